"""The TypeScript evaluator on ts-dedent (a real npm tarball: TypeScript source + Jest suite),
prepared by the TypeScript mutation runner exactly as for mutation testing."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_ladder import Case, buggy_state, check_ladder, check_selection, check_undefined_names

from moa.languages.sources import fetch
from moa.languages.typescript.mutation import TypeScriptMutationRunner

# Stryker's MethodExpression mutator (min -> max) on the common indentation; the suite catches it.
PATTERN = "    const pattern = new RegExp(`\\n[\\t ]{${Math.%s}}`, 'g');\n"
CASE = Case(
    language="typescript",
    source="npm:ts-dedent@2.3.0",
    file="src/index.ts",
    fixed=PATTERN % "min(...indentLengths)",
    buggy=PATTERN % "max(...indentLengths)",
    compile_error=PATTERN % "min(...indentLengths, 'one')",  # a type error, not a syntax error
    failing=PATTERN % "min(...indentLengths) + 1",
    lint_dirty="    const unused = 1;\n" + PATTERN % "min(...indentLengths)",
    caught_by="should remove the same number of tabs/spaces from each line",
    unrelated="should work with empty string",
)


@pytest.mark.slow
def test_typescript_evaluator_ladder(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source), prepare=TypeScriptMutationRunner().prepare)
    outcomes = check_ladder(CASE, state, tmp_path / "outcomes")
    check_selection(CASE, state, tmp_path / "select")
    assert outcomes["clean"].tests_total and outcomes["clean"].tests_total >= 10
    assert outcomes["tests_failed"].tests_failed
    assert any("no-unused-vars" in f for f in outcomes["lint_warnings"].lint_findings)


@pytest.mark.slow
def test_typescript_undefined_names(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source), prepare=TypeScriptMutationRunner().prepare)
    check_undefined_names(CASE, state, PATTERN % "min(...lengthsOf(indentLengths))", "lengthsOf", tmp_path)
