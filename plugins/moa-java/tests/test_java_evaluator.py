"""The Java evaluator on a real Maven Central artifact (commons-cli): the reward ladder and
the hallucinated-API check, through moa's own evaluate_patch (the plugin registered by its
entry point, as `make install` installs it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_ladder import Case, buggy_state, check_ladder, check_undefined_names

from moa.languages import sources

pytestmark = pytest.mark.slow

CASE = Case(
    language="java",
    source="maven:commons-cli:commons-cli@1.9.0",
    file="src/main/java/org/apache/commons/cli/Util.java",
    fixed="return str == null || str.isEmpty();",
    buggy="return str == null;",
    compile_error="return str == null ||;",
    failing="return true;",
    # Two raw types: javac -Xlint:all warns [rawtypes]; the logic is the fixed line's.
    lint_dirty="return str == null || str.isEmpty() || ((java.util.List) new java.util.ArrayList()).size() < 0;",
    caught_by="org.apache.commons.cli.UtilTest",
    unrelated=None,
)


@pytest.fixture(scope="module")
def state() -> Path:
    return buggy_state(CASE, sources.fetch(CASE.source))


def test_ladder_on_commons_cli(state: Path, tmp_path: Path) -> None:
    outcomes = check_ladder(CASE, state, tmp_path / "outcomes")
    assert outcomes["clean"].tests_total and outcomes["clean"].tests_total > 500
    assert any("[rawtypes]" in f for f in outcomes["lint_warnings"].lint_findings)


def test_undefined_symbols_are_the_hallucinated_api(state: Path, tmp_path: Path) -> None:
    check_undefined_names(CASE, state, "return str == null || MoaStrings.blank(str);", "MoaStrings", tmp_path)
