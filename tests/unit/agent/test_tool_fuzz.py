"""Fuzzing the agent's tools with arbitrary Unicode (lone surrogates included), bytes, NULs and
paths that lead outside: no exception escapes the executor, every observation encodes as UTF-8,
nothing is written outside the work folder, a refused patch changes nothing (multi-file patches
included) and no `.moa-patch-*`/`.moa-backup-*` file is left behind."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moa.agent.executor import Executor
from moa.agent.workspace import RepoState, Workspace
from moa.harmony.patch import MAX_PATCH_CHARS

ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
ANY_TEXT = st.text(ANY_CHAR, max_size=40)
OS_BYTES = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
NASTY_PATHS = st.sampled_from(
    [
        "calc.py",
        "pkg",
        "",
        ".",
        "..",
        "../outside",
        "/etc/passwd",
        "~/x",
        "out/x",
        "out",
        "a\0b",
        "\ud800",
        "pkg/" * 300,
    ]
)
PATHS = st.one_of(NASTY_PATHS, ANY_TEXT, OS_BYTES)
CONTENT = st.one_of(ANY_TEXT, OS_BYTES, st.just("ok\n"))


def _section(kind: str, path: str, content: str) -> str:
    body = "\n".join("+" + line for line in content.split("\n"))
    if kind == "Add":
        return f"*** Add File: {path}\n{body}"
    if kind == "Delete":
        return f"*** Delete File: {path}"
    return f"*** Update File: {path}\n@@\n-def add(a, b):\n{body}"


SECTION = st.builds(_section, st.sampled_from(["Add", "Delete", "Update"]), PATHS, CONTENT)
PATCHES = st.one_of(
    ANY_TEXT,
    st.lists(SECTION, min_size=1, max_size=3).map(
        lambda s: "*** Begin Patch\n" + "\n".join(s) + "\n*** End Patch"
    ),
    # One good section, then a bad one: all or nothing.
    st.builds(lambda bad: f"*** Begin Patch\n*** Add File: new_ok.py\n+x = 1\n{bad}\n*** End Patch", SECTION),
)
INTS = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, 1, -1, 10**9]))
CALLS = st.one_of(
    st.tuples(st.just("read_file"), st.fixed_dictionaries({"path": PATHS}, optional={"start_line": INTS})),
    st.tuples(st.just("list_files"), st.fixed_dictionaries({}, optional={"path": PATHS, "max_depth": INTS})),
    st.tuples(st.just("search"), st.fixed_dictionaries({"pattern": ANY_TEXT}, optional={"path": PATHS})),
    st.tuples(st.just("apply_patch"), st.fixed_dictionaries({"patch": PATCHES})),
    st.tuples(st.one_of(st.just("apply_patch"), ANY_TEXT), ANY_TEXT),  # raw, not even JSON
)


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
        if not p.is_symlink()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Executor, Path, Path]]:
    base = tmp_path_factory.mktemp("fuzz")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not touch\n")
    tree = base / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "blob.bin").write_bytes(b"\xff\xfe\0")
    (tree / "out").symlink_to(outside)  # a link that leads outside the work folder
    (tree / "name-\udcff".encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")).write_text(
        "x\n"
    )
    ws = Workspace.create(RepoState("python", f"path:{tree}"), tree=tree, parent=base / "work")
    yield Executor(ws), ws.root, base
    ws.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(call=CALLS)
def test_no_tool_call_raises_or_writes_outside(
    world: tuple[Executor, Path, Path], call: tuple[str, object]
) -> None:
    executor, root, base = world
    name, args = call
    outside_before = _snapshot(base / "outside")
    around_before = sorted(p.name for p in (base / "work").iterdir())
    inside_before = _snapshot(root)
    obs = executor.call(name, args if isinstance(args, str) else json.dumps(args))
    obs.text.encode("utf-8")  # shown to a tokenizer: must encode
    assert _snapshot(base / "outside") == outside_before
    assert sorted(p.name for p in (base / "work").iterdir()) == around_before
    assert not [p for p in root.rglob("*") if ".moa-patch-" in p.name or ".moa-backup-" in p.name]
    if not (name == "apply_patch" and obs.ok):
        assert _snapshot(root) == inside_before, obs.text  # refused or read-only: nothing changed


def test_named_bad_inputs_are_error_observations(world: tuple[Executor, Path, Path]) -> None:
    executor, root, _ = world
    cases = {
        "read_file": {"path": "calc\0.py"},
        "list_files": {"path": "\ud800"},
        "search": {"pattern": "x", "path": "../outside"},
        "apply_patch": {"patch": "*** Begin Patch\n*** Add File: a\0b\n+x\n*** End Patch"},
    }
    for name, args in cases.items():
        obs = executor.call(name, json.dumps(args))
        assert obs.invalid and obs.text.startswith("error:"), (name, obs)
    huge = "*** Begin Patch\n*** Add File: big.txt\n" + "+x\n" * (MAX_PATCH_CHARS // 3 + 10) + "*** End Patch"
    obs = executor.call("apply_patch", json.dumps({"patch": huge}))
    assert obs.invalid and "limit is" in obs.text and not (root / "big.txt").exists()


def test_multi_file_patch_with_an_unencodable_file_changes_nothing(
    world: tuple[Executor, Path, Path],
) -> None:
    executor, root, _ = world
    before = _snapshot(root)
    patch = (
        "*** Begin Patch\n*** Add File: first.py\n+x = 1\n*** Update File: calc.py\n@@\n-def add(a, b):\n"
        "+def add(a, b):  # \ud800\n*** End Patch"
    )
    obs = executor.call("apply_patch", json.dumps({"patch": patch}))
    assert obs.invalid and "not valid Unicode" in obs.text
    assert _snapshot(root) == before


def test_any_listing_depth_ends_where_the_tree_does(world: tuple[Executor, Path, Path]) -> None:
    # Found by the fuzz test above in a fresh clone: a depth of 10**12 looped on past the tree's
    # last level, so one tool call from a model would have stalled its stage.
    executor, _, _ = world
    started = time.monotonic()
    obs = executor.call("list_files", json.dumps({"path": ".", "max_depth": 10**12}))
    assert obs.ok and time.monotonic() - started < 5
