"""The tool executor and workspaces on real folders (run_tests: real pytest in the sandbox)."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from moa.agent.executor import Executor, failing_tests, truncate
from moa.agent.workspace import (
    RepoState,
    Workspace,
    WorkspaceError,
    apply_unified_diff,
)
from moa.harmony.patch import make_patch

CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TEST = "from calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"


def bug_diff(old: str = CALC, new: str = CALC.replace("a - b", "a + b")) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/calc.py", "b/calc.py"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (src / "node_modules" / "dep").mkdir(parents=True)
    (src / "node_modules" / "dep" / "index.js").write_text("module.exports = 1\n")
    (src / "calc.py").write_text(CALC)
    (src / "test_calc.py").write_text(TEST)
    (src / "pkg" / "__init__.py").write_text("".join(f"# line {i}\n" for i in range(1, 1001)))
    (src / "blob.bin").write_bytes(b"\xff\xfe\0")
    return src


@pytest.fixture
def ws(tree: Path, tmp_path: Path) -> Workspace:
    w = Workspace.create(RepoState("python", f"path:{tree}", bug_diff()), tree=tree, parent=tmp_path)
    yield w
    w.close()


def test_workspace_applies_the_bug_links_dependencies_and_skips_build_dirs(ws: Workspace, tree: Path) -> None:
    assert "a + b\n\n\ndef sub(a, b):\n    return a + b" in (ws.root / "calc.py").read_text()
    assert (tree / "calc.py").read_text() == CALC  # the clean tree is untouched
    assert (ws.root / "node_modules").is_symlink()
    assert not (ws.root / "pkg" / "__pycache__").exists()
    assert ws.touched == ("calc.py",)


def test_diff_that_does_not_apply_or_leaves_the_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("something else\n")
    with pytest.raises(WorkspaceError, match="does not apply"):
        apply_unified_diff(bug_diff(), tmp_path)
    evil = bug_diff().replace("a/calc.py", "a/../calc.py").replace("b/calc.py", "b/../calc.py")
    with pytest.raises(WorkspaceError, match="refused"):
        apply_unified_diff(evil, tmp_path)


def test_read_file_with_ranges_and_caps(ws: Workspace) -> None:
    ex = Executor(ws)
    obs = ex.call("read_file", json.dumps({"path": "calc.py", "start_line": 5, "end_line": 6}))
    assert obs.ok and obs.text.splitlines() == ["    5\tdef sub(a, b):", "    6\t    return a + b"]
    long = ex.call("read_file", {"path": "pkg/__init__.py"})
    assert (
        long.text.count("\n") == 400 and "[lines 1-400 of 1000; read more with start_line=401]" in long.text
    )
    assert not ex.call("read_file", {"path": "missing.py"}).ok
    assert "not a UTF-8 text file" in ex.call("read_file", {"path": "blob.bin"}).text
    assert ex.invalid_calls == 0


def test_list_files_hides_build_and_dependency_dirs_and_takes_globs(ws: Workspace) -> None:
    ex = Executor(ws)
    listing = ex.call("list_files", {}).text.splitlines()
    assert "calc.py" in listing and "pkg/" in listing and "pkg/__init__.py" in listing
    assert not any("node_modules" in s or "__pycache__" in s for s in listing)
    assert ex.call("list_files", {"path": "*.py"}).text.splitlines() == ["calc.py", "test_calc.py"]
    assert ex.call("list_files", {"path": ".", "max_depth": 1}).text.count("pkg/__init__.py") == 0


def test_search_regex_literal_fallback_and_result_cap(ws: Workspace) -> None:
    ex = Executor(ws)
    assert ex.call("search", {"pattern": r"def \w+\(a"}).text.splitlines() == [
        "calc.py:1: def add(a, b):",
        "calc.py:5: def sub(a, b):",
    ]
    literal = ex.call("search", {"pattern": "add(2"})
    assert "searched for the literal text" in literal.text and "test_calc.py:5:" in literal.text
    secret = ws.root.parent / "secret.txt"
    secret.write_text("TOKEN=hunter2\n")
    (ws.root / "leak.txt").symlink_to(secret)
    assert ex.call("search", {"pattern": "hunter2"}).text == "no matches for 'hunter2'"
    assert ex.call("read_file", {"path": "leak.txt"}).invalid
    capped = ex.call("search", {"pattern": "line", "max_results": 5})
    assert capped.text.count("\n") == 5 and "stopped after 5 matches" in capped.text


def test_search_with_a_catastrophic_pattern_stops_at_its_time_budget(ws: Workspace) -> None:
    """`(a|aa)+$` on 40 a's and a b backtracks for hours (in `re` and in `regex` alike); the
    search gives up at its budget with an error observation naming the pattern and where it was."""
    import time

    from moa.agent.executor import Caps

    (ws.root / "aaa.txt").write_text("a" * 40 + "b\n")
    ex = Executor(ws, caps=Caps(search_seconds=0.5))
    started = time.monotonic()
    obs = ex.call("search", {"pattern": "(a|aa)+$", "path": "aaa.txt"})
    took = time.monotonic() - started
    assert not obs.ok and not obs.invalid
    assert "took over 0.5s" in obs.text and "aaa.txt:1" in obs.text and "(a|aa)+$" in obs.text
    assert took < 10, f"the search ran {took:.1f}s past a 0.5s budget"
    assert ex.call("search", {"pattern": "a+b$", "path": "aaa.txt"}).text == "aaa.txt:1: " + "a" * 40 + "b"


def test_apply_patch_and_refusals_are_counted_as_invalid(ws: Workspace, tmp_path: Path) -> None:
    ex = Executor(ws)
    fix = make_patch({"calc.py": ((ws.root / "calc.py").read_text(), CALC)})
    assert ex.call("apply_patch", {"patch": fix}).ok
    assert (ws.root / "calc.py").read_text() == CALC
    outside = "*** Begin Patch\n*** Add File: ../evil.py\n+x = 1\n*** End Patch\n"
    absolute = f"*** Begin Patch\n*** Add File: {tmp_path}/evil.py\n+x = 1\n*** End Patch\n"
    (ws.root / "link").symlink_to(tmp_path)
    through_link = "*** Begin Patch\n*** Add File: link/evil.py\n+x = 1\n*** End Patch\n"
    for patch in (outside, absolute, through_link):
        obs = ex.call("apply_patch", {"patch": patch})
        assert obs.invalid and "refused" in obs.text
    assert not (tmp_path / "evil.py").exists()
    assert ex.call("apply_patch", {"patch": "not a patch"}).invalid
    assert ex.call("read_file", {"path": "../src/calc.py"}).invalid
    assert ex.call("delete_everything", {}).invalid
    assert ex.call("read_file", {"path": 3}).invalid
    assert ex.call("read_file", "{not json").invalid
    assert (ex.calls, ex.invalid_calls) == (9, 8)


def test_failing_test_names_and_truncation() -> None:
    out = "FAILED tests/test_a.py::test_x - assert 1 == 2\ntest util::parse ... FAILED\n    --- FAIL: TestThing (0.00s)\nnot ok 3 - adds numbers\n"
    assert failing_tests(out) == ("tests/test_a.py::test_x", "util::parse", "TestThing", "adds numbers")
    text = "\n".join(f"line {i}" for i in range(5000))
    short = truncate(text, 1000)
    assert (
        len(short) < 1100
        and short.startswith("line 0")
        and short.endswith("line 4999")
        and "lines omitted" in short
    )


@pytest.mark.slow
def test_run_tests_runs_the_language_tests_in_the_sandbox(ws: Workspace) -> None:
    ex = Executor(ws)
    red = ex.call("run_tests", {})
    assert red.ok and red.text.startswith("FAILED") and "test_calc.py::test_sub" in red.text
    assert ex.last_tests is not None and ex.last_tests.failing == ("test_calc.py::test_sub",)
    assert str(ws.root) not in red.text  # paths are shown relative to the repository
    ex.call("apply_patch", {"patch": make_patch({"calc.py": ((ws.root / "calc.py").read_text(), CALC)})})
    green = ex.call("run_tests", {"tests": ["test_calc.py::test_sub"]})
    assert green.text.startswith("PASSED") and ex.last_tests.passed
