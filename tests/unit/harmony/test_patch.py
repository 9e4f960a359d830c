"""apply_patch: the grammar, safe all-or-nothing application, and patches written from contents."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from moa.harmony import patch as P
from moa.harmony.patch import PatchError, apply, make_patch, parse_patch, render_patch

CODEX_EXAMPLE = """*** Begin Patch
*** Add File: hello.txt
+Hello world
*** Update File: src/app.py
*** Move to: src/main.py
@@ def greet():
-print("Hi")
+print("Hello, world!")
*** Delete File: obsolete.txt
*** End Patch
"""


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_bytes().decode() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_codex_example(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/app.py").write_text('def greet():\n    pass\nprint("Hi")\n')
    (tmp_path / "obsolete.txt").write_text("old\n")
    parsed = parse_patch(CODEX_EXAMPLE)
    assert render_patch(parsed) == CODEX_EXAMPLE
    done = apply(parsed, tmp_path)
    assert (done.added, done.modified, done.deleted) == (["hello.txt"], ["src/main.py"], ["obsolete.txt"])
    assert files(tmp_path) == {
        "hello.txt": "Hello world\n",
        "src/main.py": 'def greet():\n    pass\nprint("Hello, world!")\n',
    }
    assert str(done).splitlines()[0] == "Success. Updated the following files:"


def test_chunks_anchor_on_context_and_end_of_file(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("x = 1\ndef a():\n    x = 1\ndef b():\n    x = 1\n")
    patch = "*** Begin Patch\n*** Update File: f.py\n@@ def b():\n-    x = 1\n+    x = 2\n*** End of File\n*** End Patch"
    apply(patch, tmp_path)
    assert (tmp_path / "f.py").read_text() == "x = 1\ndef a():\n    x = 1\ndef b():\n    x = 2\n"
    # Trailing whitespace the model dropped still matches (and, as in codex, the patch's
    # context lines replace the file's); the first chunk may omit @@.
    (tmp_path / "g.txt").write_text("keep  \nold\n")
    apply("*** Begin Patch\n*** Update File: g.txt\n keep\n-old\n+new\n*** End Patch", tmp_path)
    assert (tmp_path / "g.txt").read_text() == "keep\nnew\n"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "first line of the patch must be"),
        ("*** Begin Patch\n*** Add File: a\n+x\n", 3, "last line of the patch must be"),
        ("*** Begin Patch\n*** End Patch", 1, "changes no file"),
        ("*** Begin Patch\n*** Frobnicate: a\n*** End Patch", 2, "is not a file operation"),
        ("*** Begin Patch\n*** Update File: a\n*** End Patch", 2, "has no chunks"),
        (
            "*** Begin Patch\n*** Update File: a\n@@\n-x\n@@ y\n+z\nnope\n*** End Patch",
            7,
            "expected a '@@' line",
        ),
        ("*** Begin Patch\n*** Update File: a\n@@\nbad\n*** End Patch", 4, "must start with ' ', '-' or '+'"),
        ("*** Begin Patch\n*** Add File: \n*** End Patch", 2, "missing path"),
    ],
)
def test_parse_errors_carry_line_numbers(text: str, line: int, message: str) -> None:
    with pytest.raises(PatchError, match=re.escape(message)) as info:
        parse_patch(text)
    assert info.value.line == line


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../outside.txt", "a/../../outside.txt", "~/x", "link_out/x.txt", "file_link"]
)
def test_paths_that_leave_the_root_are_refused_and_nothing_is_written(tmp_path: Path, path: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "x.txt").write_text("secret\n")
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "file_link").symlink_to(outside / "x.txt")
    before = files(tmp_path)
    patch = f"*** Begin Patch\n*** Add File: first.txt\n+would be written\n*** Add File: {path}\n+pwned\n*** End Patch"
    with pytest.raises(PatchError, match="refused") as info:
        apply(patch, root)
    assert info.value.line == 4
    assert files(tmp_path) == before


def test_a_failing_operation_leaves_everything_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    before = files(tmp_path)
    patch = "*** Begin Patch\n*** Delete File: a.txt\n*** Add File: new/c.txt\n+c\n*** Update File: b.txt\n@@\n-missing\n+x\n*** End Patch"
    with pytest.raises(PatchError, match=r"lines to replace not found in b\.txt") as info:
        apply(patch, tmp_path)
    assert info.value.line == 5
    assert files(tmp_path) == before and not (tmp_path / "new").exists()
    with pytest.raises(PatchError, match="does not exist"):
        apply("*** Begin Patch\n*** Delete File: nope.txt\n*** End Patch", tmp_path)
    (tmp_path / "d").mkdir()
    with pytest.raises(PatchError, match="directory"):
        apply("*** Begin Patch\n*** Delete File: d\n*** End Patch", tmp_path)


def test_a_write_failure_mid_commit_is_rolled_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection (a disk error cannot be provoked for real as root): the 3rd rename fails."""
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    before = files(tmp_path)
    real_replace, calls = os.replace, []

    def flaky(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(P.os, "replace", flaky)
    patch = make_patch({"a.txt": ("a\n", "A\n"), "b.txt": ("b\n", "B\n"), "c.txt": (None, "c\n")})
    with pytest.raises(PatchError, match="nothing was changed"):
        apply(patch, tmp_path)
    monkeypatch.setattr(P.os, "replace", real_replace)
    assert files(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt"]  # no temporaries left


# --- properties ------------------------------------------------------------------------

# Few distinct lines, so files repeat themselves and chunk placement can go wrong.
line = st.one_of(
    st.sampled_from(["a", "b", "", "  a", "a ", "}", "*** End of File", "@@", "+", "-x", "\r"]),
    st.text(max_size=8),
)
lines = st.lists(line.filter(lambda s: "\n" not in s), max_size=25)


def contents(ls: list[str], final_newline: bool) -> str:
    return "\n".join(ls) + ("\n" if final_newline and ls else "")


def normalized(text: str) -> str:
    return "".join(s + "\n" for s in P._split(text))


@st.composite
def edits(draw: st.DrawFn) -> tuple[str, str]:
    old = draw(lines)
    new = list(old)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(new)))
        kind = draw(st.sampled_from(["insert", "delete", "replace"]))
        if kind == "insert" or not new[at:]:
            new.insert(at, draw(line.filter(lambda s: "\n" not in s)))
        elif kind == "delete":
            del new[at]
        else:
            new[at] = draw(line.filter(lambda s: "\n" not in s))
    return contents(old, draw(st.booleans())), contents(new, draw(st.booleans()))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits())
def test_written_patches_apply_back_to_the_new_contents(edit: tuple[str, str]) -> None:
    old, new = edit
    if old == new:
        return
    text = make_patch({"f.txt": (old, new)})
    patch = parse_patch(text)
    assert render_patch(patch) == text
    [update] = patch.operations
    assert isinstance(update, P.UpdateFile)
    assert P.apply_chunks(old, update.chunks) == normalized(new)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits(), edits())
def test_patches_apply_to_a_folder(one: tuple[str, str], two: tuple[str, str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "src").mkdir()
        (root / "src/one.txt").write_bytes(one[0].encode())
        (root / "gone.txt").write_bytes(two[0].encode())
        changes = {"src/one.txt": one, "gone.txt": (two[0], None), "src/new/two.txt": (None, two[1])}
        apply(make_patch(changes), root)
        unchanged = one[0] == one[1]  # make_patch leaves an unchanged file out
        assert files(root) == {
            "src/one.txt": one[1] if unchanged else normalized(one[1]),
            "src/new/two.txt": normalized(two[1]),
        }


@settings(max_examples=1000, deadline=None)
@given(st.text())
def test_arbitrary_text_only_raises_patch_error(text: str) -> None:
    try:
        parse_patch("*** Begin Patch\n" + text + "\n*** End Patch")
        parse_patch(text)
    except PatchError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits(), st.data())
def test_mutated_patches_parse_and_apply_or_fail_with_patch_error(
    edit: tuple[str, str], data: st.DataObject
) -> None:
    old, new = edit
    if old == new:
        return
    text = make_patch({"f.txt": (old, new), "g.txt": (None, "g\n")})
    ls = text.split("\n")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(ls)))
        choice = data.draw(st.sampled_from(["drop", "insert", "prefix"]))
        if choice == "drop" and at < len(ls):
            del ls[at]
        elif choice == "insert":
            ls.insert(
                at,
                data.draw(
                    st.sampled_from(
                        [
                            "@@",
                            "*** End of File",
                            "*** Add File: ../x",
                            "*** Update File: /abs",
                            "*** Move to: f.txt",
                            "",
                            " x",
                            "-y",
                        ]
                    )
                ),
            )
        elif at < len(ls):
            ls[at] = data.draw(st.sampled_from(["", " ", "-", "+", "*"])) + ls[at]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "f.txt").write_bytes(old.encode())
        try:
            apply("\n".join(ls), root)
        except PatchError as exc:
            assert exc.line is None or exc.line >= 1
            assert files(root) == {"f.txt": old}
