"""The apply_patch format (gpt-oss / codex) : parse, apply safely, and write patches.

    *** Begin Patch
    *** Add File: PATH              every following line is `+TEXT` (the new file)
    *** Delete File: PATH
    *** Update File: PATH
    *** Move to: NEW_PATH           optional rename
    @@ [CONTEXT LINE]               a chunk: optional anchor line, then
     TEXT / -TEXT / +TEXT           context, removed and added lines
    *** End of File                 optional: the chunk ends at the end of the file
    *** End Patch

Parsing and chunk placement follow codex's apply-patch (marker lines may carry stray
whitespace; the first chunk may omit `@@`; chunk lines are found exactly, then ignoring
trailing whitespace, then ignoring surrounding whitespace; a chunk with no context or
removed lines is appended at the end of the file). Two deliberate differences: hunk lines
are kept byte-exact (a `\\r` stays), and the result ends with one newline after the last
line without swallowing a final blank line.

`apply` is all-or-nothing and confined to its root: absolute paths, `..` and symlinks
that lead outside are refused before anything is written. `make_patch` writes the patch
that turns old contents into new ones (the oracle teacher's fix), checked by replaying it.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = "*** Add File: ", "*** Delete File: ", "*** Update File: ", "*** Move to: "
EOF_MARKER = "*** End of File"


class PatchError(ValueError):
    """A patch that cannot be parsed or applied; `line` is its 1-based line in the patch text."""

    def __init__(self, message: str, line: int | None = None, path: str | None = None) -> None:
        # The message quotes model-written paths: lone surrogates become escapes so it can be
        # shown, stored and encoded anywhere.
        message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        self.reason, self.line, self.path = message, line, path
        where = f"line {line}: " if line is not None else ""
        super().__init__(where + message)


@dataclass(frozen=True)
class Chunk:
    """One `@@` chunk: `lines` are (op, text) with op ' ' (context), '-' or '+', in order."""

    context: str | None
    lines: tuple[tuple[str, str], ...]
    end_of_file: bool = False

    @property
    def old(self) -> list[str]:
        return [text for op, text in self.lines if op != "+"]

    @property
    def new(self) -> list[str]:
        return [text for op, text in self.lines if op != "-"]


@dataclass(frozen=True)
class AddFile:
    path: str
    content: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class DeleteFile:
    path: str
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class UpdateFile:
    path: str
    chunks: tuple[Chunk, ...]
    move_to: str | None = None
    line: int = field(default=0, compare=False)


Operation = AddFile | DeleteFile | UpdateFile


@dataclass(frozen=True)
class Patch:
    operations: tuple[Operation, ...]


# --- parse ---------------------------------------------------------------------------


MAX_PATCH_CHARS = 1 << 20  # a patch is an edit, not a data dump: larger ones are refused


def parse_patch(text: str) -> Patch:
    if len(text) > MAX_PATCH_CHARS:
        raise PatchError(f"the patch is {len(text)} characters; the limit is {MAX_PATCH_CHARS}")
    lines = text.split("\n")
    first = next((i for i, s in enumerate(lines) if s.strip()), len(lines))
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), -1)
    if first >= len(lines) or lines[first].strip() != BEGIN:
        raise PatchError(
            f"the first line of the patch must be {BEGIN!r}", first + 1 if first < len(lines) else 1
        )
    if last <= first or lines[last].strip() != END:
        raise PatchError(f"the last line of the patch must be {END!r}", last + 1)
    body = lines[first + 1 : last]
    ops: list[Operation] = []
    i = 0
    while i < len(body):
        op, i = _operation(body, i, first + 2)
        ops.append(op)
    if not ops:
        raise PatchError("the patch changes no file (add an *** Add/Delete/Update File section)", first + 1)
    return Patch(tuple(ops))


def _operation(body: list[str], i: int, base: int) -> tuple[Operation, int]:
    """Parse the operation starting at body[i]; `base` is the patch line number of body[0]."""
    header, lineno = body[i].strip(), base + i
    if _starts(header, ADD):
        path = _path(header[len(ADD) :], lineno)
        j = i + 1
        while j < len(body) and body[j].startswith("+"):
            j += 1
        return AddFile(path, "".join(s[1:] + "\n" for s in body[i + 1 : j]), lineno), j
    if _starts(header, DELETE):
        return DeleteFile(_path(header[len(DELETE) :], lineno), lineno), i + 1
    if _starts(header, UPDATE):
        path = _path(header[len(UPDATE) :], lineno)
        j, move_to = i + 1, None
        if j < len(body) and _starts(body[j].strip(), MOVE):
            move_to = _path(body[j].strip()[len(MOVE) :], base + j)
            j += 1
        chunks: list[Chunk] = []
        while j < len(body):
            if not body[j].strip():
                j += 1  # blank separators between chunks (a blank line inside a chunk is context)
                continue
            if body[j].startswith("*"):
                break
            chunk, j = _chunk(body, j, base, first=not chunks)
            chunks.append(chunk)
        if not chunks:
            raise PatchError(f"the update of {path!r} has no chunks", lineno)
        return UpdateFile(path, tuple(chunks), move_to, lineno), j
    raise PatchError(
        f"{header!r} is not a file operation (expected '*** Add File: PATH', '*** Delete File: PATH' or '*** Update File: PATH')",
        lineno,
    )


def _chunk(body: list[str], j: int, base: int, first: bool) -> tuple[Chunk, int]:
    context: str | None = None
    if body[j].strip() == "@@":
        j += 1
    elif body[j].startswith("@@ "):
        context = body[j][3:]
        j += 1
    elif not first:
        raise PatchError(f"expected a '@@' line to start the next chunk, got {body[j]!r}", base + j)
    lines: list[tuple[str, str]] = []
    eof = False
    while j < len(body):
        s = body[j]
        if s == EOF_MARKER:
            if not lines:
                break
            eof, j = True, j + 1
            break
        if s == "":
            lines.append((" ", ""))
        elif s[0] in " -+":
            lines.append((s[0], s[1:]))
        elif lines:
            break
        else:
            raise PatchError(f"chunk line {s!r} must start with ' ', '-' or '+'", base + j)
        j += 1
    if not lines:
        raise PatchError("a chunk with no lines", base + j)
    return Chunk(context, tuple(lines), eof), j


def _starts(line: str, marker: str) -> bool:
    """`line` is this marker (an empty path after it is reported as such, not as a bad header)."""
    return line.startswith(marker) or line == marker.rstrip()


def _path(raw: str, lineno: int) -> str:
    path = raw.strip()
    if not path:
        raise PatchError("missing path", lineno)
    return path


# --- render --------------------------------------------------------------------------


def render_patch(patch: Patch) -> str:
    out = [BEGIN]
    for op in patch.operations:
        if isinstance(op, AddFile):
            out.append(ADD + op.path)
            out += ["+" + s for s in _split(op.content)]
        elif isinstance(op, DeleteFile):
            out.append(DELETE + op.path)
        else:
            out.append(UPDATE + op.path)
            if op.move_to:
                out.append(MOVE + op.move_to)
            for chunk in op.chunks:
                out.append("@@" if chunk.context is None else "@@ " + chunk.context)
                out += [o + s for o, s in chunk.lines]
                if chunk.end_of_file:
                    out.append(EOF_MARKER)
    out.append(END)
    return "\n".join(out) + "\n"


def _split(content: str) -> list[str]:
    """File lines as apply_patch sees them: split on \\n, the final newline is not a line."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _join(lines: Sequence[str]) -> str:
    return "".join(s + "\n" for s in lines)


# --- chunk placement -------------------------------------------------------------------


def _seek(lines: Sequence[str], pattern: Sequence[str], start: int, eof: bool) -> int | None:
    if not pattern:
        return start
    if len(pattern) > len(lines):
        return None
    begin = len(lines) - len(pattern) if eof else start
    # Exact first, then forgiving trailing and surrounding whitespace (models drop it).
    for norm in (_exact, str.rstrip, str.strip):
        wanted = [norm(p) for p in pattern]
        for i in range(begin, len(lines) - len(pattern) + 1):
            if all(norm(lines[i + k]) == w for k, w in enumerate(wanted)):
                return i
    return None


def _exact(line: str) -> str:
    return line


def apply_chunks(content: str, chunks: Sequence[Chunk], path: str = "file", line: int | None = None) -> str:
    """New contents of a file after its update chunks."""
    lines = _split(content)
    replacements: list[tuple[int, int, list[str]]] = []
    at = 0
    for chunk in chunks:
        if chunk.context is not None:
            found = _seek(lines, [chunk.context], at, False)
            if found is None:
                raise PatchError(f"context line {chunk.context!r} not found in {path}", line, path)
            at = found + 1
        old, new = chunk.old, chunk.new
        if not old:
            replacements.append((len(lines), 0, new))
            continue
        found = _seek(lines, old, at, chunk.end_of_file)
        if found is None and old[-1] == "":
            old, new = old[:-1], new[:-1] if new and new[-1] == "" else new
            found = _seek(lines, old, at, chunk.end_of_file)
        if found is None:
            shown = "\n".join(chunk.old)
            raise PatchError(f"lines to replace not found in {path}:\n{shown}", line, path)
        replacements.append((found, len(old), new))
        at = found + len(old)
    for start, length, new in sorted(replacements, key=lambda r: r[0], reverse=True):
        lines[start : start + length] = new
    return _join(lines)


# --- write patches -----------------------------------------------------------------------


def make_patch(changes: Mapping[str, tuple[str | None, str | None]]) -> str:
    """The apply_patch text that turns each path's old contents into its new ones
    (None = the file does not exist). Chunks carry 3 lines of context, more where 3 would
    place a chunk ambiguously: every update is replayed and must give exactly `new`.

    apply_patch always ends a non-empty file with a newline, so a `new` without one
    comes out with one (as it would from any apply_patch tool)."""
    ops: list[Operation] = []
    for path, (old, new) in changes.items():
        if path != path.strip() or "\n" in path or not path:
            raise PatchError(
                f"path {path!r} cannot be written in a patch (whitespace at its ends or a newline)"
            )
        if old == new:
            continue
        if new is None:
            ops.append(DeleteFile(path))
        elif old is None:
            ops.append(AddFile(path, new))
        else:
            ops.append(UpdateFile(path, _diff(path, old, new)))
    if not ops:
        raise PatchError("nothing changes: old and new contents are the same")
    return render_patch(Patch(tuple(ops)))


def _diff(path: str, old: str, new: str) -> tuple[Chunk, ...]:
    a, b = _split(old), _split(new)
    expected = _join(b)
    context = 3
    while True:
        matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
        chunks = tuple(_group_chunk(group, a, b) for group in matcher.get_grouped_opcodes(context))
        if not chunks:  # only the final newline differs: rewrite the last line
            chunks = (Chunk(None, tuple([("-", s) for s in a[-1:]] + [("+", s) for s in b[-1:]]), True),)
        try:
            if apply_chunks(old, chunks, path) == expected:
                return chunks
        except PatchError:
            pass
        if context > len(a):
            raise PatchError(f"cannot express the change of {path!r} as a patch")
        context *= 2


def _group_chunk(group: list[tuple[str, int, int, int, int]], a: list[str], b: list[str]) -> Chunk:
    lines: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in group:
        if tag == "equal":
            lines += [(" ", s) for s in a[i1:i2]]
        else:
            lines += [("-", s) for s in a[i1:i2]] + [("+", s) for s in b[j1:j2]]
    return Chunk(None, tuple(lines), end_of_file=group[-1][2] == len(a) and len(a) > 0)


# --- apply to a folder ---------------------------------------------------------------------


@dataclass
class Applied:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        rows = (
            [f"A {p}" for p in self.added]
            + [f"M {p}" for p in self.modified]
            + [f"D {p}" for p in self.deleted]
        )
        return "\n".join(["Success. Updated the following files:", *rows])


def apply(patch: Patch | str, root: Path) -> Applied:
    """Apply a patch under `root`, all or nothing. Every path is checked (relative, no
    `..`, resolving inside root through any symlinks) and every change computed in
    memory before the first write; the writes then happen by rename, and are undone if
    one fails."""
    if isinstance(patch, str):
        patch = parse_patch(patch)
    root = root.resolve()
    plan = _Plan(root)
    done = Applied()
    for op in patch.operations:
        try:
            _plan(op, root, plan, done)
        except PatchError:
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # a name too long, a symlink loop, a NUL
            raise PatchError(f"{op.path!r}: {exc}", op.line, op.path) from exc
    plan.commit()
    return done


def _plan(op: Operation, root: Path, plan: _Plan, done: Applied) -> None:
    """Check one operation and record its effect in `plan` (nothing is written yet)."""
    target = _inside(root, op.path, op.line)
    if isinstance(op, AddFile):
        plan.write(target, op.content, op.line)
        (done.modified if plan.existed(target) else done.added).append(op.path)
    elif isinstance(op, DeleteFile):
        plan.read(target, op.path, op.line)
        plan.remove(target)
        done.deleted.append(op.path)
    else:
        new = apply_chunks(plan.read(target, op.path, op.line), op.chunks, op.path, op.line)
        if op.move_to is not None:
            dest = _inside(root, op.move_to, op.line)
            plan.write(dest, new, op.line, mode_from=target)
            if dest != target:
                plan.remove(target)
            done.modified.append(op.move_to)
        else:
            plan.write(target, new, op.line)
            done.modified.append(op.path)


def _inside(root: Path, rel: str, line: int) -> Path:
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~"):
        raise PatchError(
            f"absolute path {rel!r} refused: paths are relative to the repository root", line, rel
        )
    if ".." in pure.parts:
        raise PatchError(f"path {rel!r} refused: '..' may not appear in a patch path", line, rel)
    target = (root / pure).resolve()
    if target == root or not target.is_relative_to(root):
        raise PatchError(
            f"path {rel!r} refused: it resolves to {target}, outside {root} (a symlink?)", line, rel
        )
    return target


class _Plan:
    """The new state of every touched file, in memory, then committed by renames."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: dict[Path, str | None] = {}
        self.modes: dict[Path, Path] = {}

    def existed(self, path: Path) -> bool:
        return path.is_file()

    def read(self, path: Path, rel: str, line: int) -> str:
        if path in self.state:
            content = self.state[path]
            if content is None:
                raise PatchError(f"{rel} was deleted earlier in this patch", line, rel)
            return content
        if path.is_dir():
            raise PatchError(f"{rel} is a directory, not a file", line, rel)
        if not path.is_file():
            raise PatchError(f"{rel} does not exist", line, rel)
        try:
            return path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise PatchError(
                f"{rel} is not UTF-8 text; apply_patch edits text files only", line, rel
            ) from None

    def write(self, path: Path, content: str, line: int, mode_from: Path | None = None) -> None:
        rel = path.relative_to(self.root).as_posix()
        try:  # refused now, not half-way through the writes
            content.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PatchError(
                f"{rel}: the new content is not valid Unicode ({exc.reason})", line, rel
            ) from None
        if path.is_dir():
            raise PatchError(f"{path.relative_to(self.root)} is a directory", line)
        for parent in path.relative_to(self.root).parents:
            if (self.root / parent).is_file() or self.state.get(self.root / parent) is not None:
                raise PatchError(f"cannot create {path.relative_to(self.root)}: {parent} is a file", line)
        self.state[path] = content
        if mode_from is not None:
            self.modes[path] = mode_from

    def remove(self, path: Path) -> None:
        self.state[path] = None

    def commit(self) -> None:
        staged: list[tuple[Path, Path]] = []  # (target, temporary file with its new content)
        backups: list[tuple[Path, Path]] = []  # (target, where its old content waits)
        created_dirs: list[Path] = []
        replaced: list[Path] = []
        try:
            for n, (path, content) in enumerate(self.state.items()):
                if content is None:
                    continue
                for parent in reversed(path.relative_to(self.root).parents):
                    folder = self.root / parent
                    if not folder.exists():
                        folder.mkdir()
                        created_dirs.append(folder)
                tmp = path.with_name(f".{path.name}.moa-patch-{os.getpid()}-{n}")
                tmp.write_bytes(content.encode("utf-8"))
                source = self.modes.get(path, path)
                if source.exists():
                    os.chmod(tmp, source.stat().st_mode & 0o7777)
                staged.append((path, tmp))
            for n, path in enumerate(self.state):
                if path.exists():
                    backup = path.with_name(f".{path.name}.moa-backup-{os.getpid()}-{n}")
                    os.replace(path, backup)
                    backups.append((path, backup))
            for path, tmp in staged:
                os.replace(tmp, path)
                replaced.append(path)
        except (OSError, ValueError) as exc:
            for path in replaced:
                path.unlink(missing_ok=True)
            for path, backup in backups:
                os.replace(backup, path)
            for _, tmp in staged:
                tmp.unlink(missing_ok=True)
            for folder in reversed(created_dirs):
                folder.rmdir()
            raise PatchError(f"writing the patch failed, nothing was changed: {exc}") from exc
        for _, backup in backups:
            backup.unlink()
