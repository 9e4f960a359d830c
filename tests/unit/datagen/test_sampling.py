"""The seeded, stratified draw of mutants and the bug classes plugins map operators to."""

from __future__ import annotations

from collections import Counter

from moa.languages.go.mutation import GoMutationRunner
from moa.languages.rust.mutation import bug_class as rust_class
from moa.languages.sampling import operator_swap_class, stratified
from moa.languages.typescript.mutation import bug_class as ts_class


def test_a_cap_spreads_over_files_functions_and_classes() -> None:
    # one folder with 200 mutants of one function, three small files: the first 12 in file order
    # would all come from the big one
    items = [("a/big.ts", "f", "comparison", i) for i in range(200)]
    items += [
        (f"b/{n}.ts", g, c, i)
        for n in "xyz"
        for g in "gh"
        for c in ("arithmetic", "boolean")
        for i in range(2)
    ]
    drawn = stratified(items, 12, seed=7, key=lambda t: t[:3])
    files = Counter(t[0] for t in drawn)
    assert len(files) == 4 and max(files.values()) == 3, files
    assert len({(t[0], t[1]) for t in drawn}) >= 7 and {t[2] for t in drawn} == {
        "comparison",
        "arithmetic",
        "boolean",
    }
    assert stratified(items, 12, seed=7, key=lambda t: t[:3]) == drawn  # same seed, same sample
    assert stratified(items, 12, seed=8, key=lambda t: t[:3]) != drawn
    assert sorted(stratified(items, None, 0, key=lambda t: t[:3])) == sorted(items)


def test_the_operator_mix_is_applied_before_the_draw() -> None:
    runner = GoMutationRunner(operator_classes=("boundary",), seed=1)
    items = [("p.go", "F", c, i) for c in ("boundary", "stub", "sentinel") for i in range(5)]
    drawn = runner.draw(items, 3, key=lambda t: t[:3])
    assert len(drawn) == 3 and {t[2] for t in drawn} == {"boundary"}
    assert runner.rejected["operator_excluded"] == 10


def test_bug_classes_of_tool_operators() -> None:
    assert operator_swap_class("<", "<=") == "boundary" and operator_swap_class("==", "!=") == "comparison"
    assert operator_swap_class("+=", "-=") == "arithmetic" and operator_swap_class("&&", "||") == "boolean"
    assert rust_class("FnValue", "replace f -> Result<()> with Ok(())") == "stub"
    assert rust_class("BinaryOperator", "replace > with >=") == "boundary"
    assert rust_class("MatchArm", "delete match arm") == "block"
    assert ts_class("StringLiteral", '"a"', '"Stryker was here!"') == "sentinel"
    assert ts_class("BlockStatement", "{ return 1; }", "{}") == "block"
    assert ts_class("EqualityOperator", "a < b", "a <= b") == "boundary"
    assert ts_class("EqualityOperator", "a === b", "a !== b") == "comparison"
