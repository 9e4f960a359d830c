"""The Rust evaluator on fnv (a real crate from crates.io, tests inside lib.rs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_ladder import Case, buggy_state, check_ladder, check_selection, check_undefined_names

from moa.languages.sources import fetch

# An operator replacement in the hash loop (^ -> |), as cargo-mutants makes; fnv's tests catch it.
CASE = Case(
    language="rust",
    source="crates:fnv@1.0.7",
    file="lib.rs",
    fixed="            hash = hash ^ (*byte as u64);\n",
    buggy="            hash = hash | (*byte as u64);\n",
    compile_error="            hash = hash ^ (*byte as u64)\n",
    failing="            hash = hash & (*byte as u64);\n",
    lint_dirty="            let unused = 1;\n            hash = hash ^ (*byte as u64);\n",
    caught_by="basic_tests",
    unrelated=None,
)


@pytest.mark.slow
def test_rust_evaluator_ladder(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source))
    outcomes = check_ladder(CASE, state, tmp_path / "outcomes")
    check_selection(CASE, state, tmp_path / "select")
    assert outcomes["clean"].tests_total and outcomes["clean"].tests_total >= 3
    assert outcomes["tests_failed"].tests_failed
    assert any("unused_variables" in f for f in outcomes["lint_warnings"].lint_findings)


@pytest.mark.slow
def test_rust_undefined_names(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source))
    check_undefined_names(
        CASE, state, "            hash = hash ^ fnv_mix_byte(*byte);\n", "fnv_mix_byte", tmp_path
    )
