"""The Go evaluator on github.com/google/uuid (a real module zip from the Go proxy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_ladder import Case, buggy_state, check_ladder, check_selection, check_undefined_names

from moa.languages.sources import fetch

# A shift-amount mutation of UUID.Version; uuid's tests catch it.
CASE = Case(
    language="go",
    source="go:github.com/google/uuid@v1.6.0",
    file="uuid.go",
    fixed="\treturn Version(uuid[6] >> 4)\n",
    buggy="\treturn Version(uuid[6] >> 3)\n",
    compile_error="\treturn Version(uuid[6] >> 4\n",
    failing="\treturn Version(uuid[6] >> 5)\n",
    # Correct, but vet's printf check flags the format verb without an argument.
    lint_dirty='\tif false {\n\t\tfmt.Printf("%d\\n")\n\t}\n\treturn Version(uuid[6] >> 4)\n',
    caught_by="TestUUID",
    unrelated="TestConstants",
)


@pytest.mark.slow
def test_go_evaluator_ladder(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source))
    outcomes = check_ladder(CASE, state, tmp_path / "outcomes")
    check_selection(CASE, state, tmp_path / "select")
    assert outcomes["clean"].tests_total and outcomes["clean"].tests_total > 20
    assert outcomes["tests_failed"].tests_failed
    assert outcomes["clean"].lint_available
    assert any("vet" in f for f in outcomes["lint_warnings"].lint_findings)


@pytest.mark.slow
def test_go_undefined_names(tmp_path: Path) -> None:
    state = buggy_state(CASE, fetch(CASE.source))
    check_undefined_names(CASE, state, "\treturn Version(uuidVersionOf(uuid))\n", "uuidVersionOf", tmp_path)
