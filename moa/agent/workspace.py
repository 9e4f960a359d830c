"""A sandboxed working copy of a repository at a given state: the agent's world.

A repository state is a clean source plus an optional fixed -> buggy unified diff (a caught
mutation). Trajectories, preference ranking, GRPO rollouts and eval all need the same thing:
a private, writable copy of that state to read, edit and test, thrown away afterwards. The
clean source comes from `moa.languages.sources.fetch`; it is made buildable once per source
(the language's `prepare`, which may need the network) into a cached *prepared* tree, and each
workspace is a cheap copy of that tree. Dependency folders (each plugin's `dependency_dirs`) are
linked, not copied: the sandbox mounts the host read-only, so tests cannot modify them, and
`apply_patch` refuses paths that leave the workspace through a link.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from moa.api.records import SourceRef
from moa.languages import registry
from moa.languages.tools import cache_dir, file_lock

# Never shown to the agent (list_files/search) and never copied into a workspace: version
# control and generic caches, plus each language plugin's build output (`build_dirs`).
VCS_DIRS = frozenset({".git", ".hg", ".svn", ".cache"})


def build_dirs() -> frozenset[str]:
    """Caches and build outputs that a test run recreates."""
    return VCS_DIRS | registry.build_dirs()


def hidden_dirs() -> frozenset[str]:
    """What the agent never sees: build output, and the dependencies `prepare` installed
    (linked into each workspace: the plugins' `dependency_dirs`)."""
    return build_dirs() | registry.dependency_dirs()


_PREPARED_MARKER = ".moa-prepared.json"


class WorkspaceError(RuntimeError):
    """The state cannot be built (the diff does not apply, the source is missing)."""


@dataclass(frozen=True)
class RepoState:
    """What a workspace holds: `source` (a SourceRef string) with `diff` (fixed -> buggy) applied."""

    language: str
    source: str
    diff: str = ""


# ------------------------------------------------------------------------------ unified diffs

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class FileDiff:
    old_path: str | None  # None: the file is created
    new_path: str | None  # None: the file is deleted
    hunks: tuple[tuple[int, tuple[str, ...]], ...]  # (old start line, lines with their ' '/'-'/'+' prefix)

    @property
    def path(self) -> str:
        return str(self.new_path or self.old_path)


def _diff_path(raw: str) -> str | None:
    name = raw.split("\t")[0].strip()
    if name == "/dev/null":
        return None
    return name[2:] if name.startswith(("a/", "b/")) else name


def parse_unified_diff(diff: str) -> list[FileDiff]:
    """The files of a unified diff (`diff -u` / difflib / git style headers)."""
    lines = diff.splitlines()
    files: list[FileDiff] = []
    i = 0
    while i < len(lines):
        if not (lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")):
            i += 1
            continue
        old, new = _diff_path(lines[i][4:]), _diff_path(lines[i + 1][4:])
        i += 2
        hunks: list[tuple[int, tuple[str, ...]]] = []
        while i < len(lines) and (m := _HUNK_RE.match(lines[i])):
            old_left, new_left = int(m[2] or 1), int(m[4] or 1)
            body: list[str] = []
            i += 1
            while i < len(lines) and (old_left > 0 or new_left > 0):
                line = lines[i]
                if line.startswith("\\"):  # "\ No newline at end of file"
                    i += 1
                    continue
                op = line[:1] or " "
                if op not in " -+":
                    raise WorkspaceError(f"diff line {i + 1}: {line!r} is not a hunk line (' ', '-' or '+')")
                old_left -= op != "+"
                new_left -= op != "-"
                body.append(op + line[1:])
                i += 1
            hunks.append((int(m[1]), tuple(body)))
        if not hunks and old is not None and new is not None:
            raise WorkspaceError(f"diff of {new}: no hunks")
        files.append(FileDiff(old, new, tuple(hunks)))
    if not files:
        raise WorkspaceError("the diff names no file (expected '--- a/PATH' / '+++ b/PATH' headers)")
    return files


def apply_hunks(content: str, fd: FileDiff) -> str:
    """New contents of one file. Each hunk must match exactly, near its stated line."""
    lines = content.splitlines()
    offset = 0
    for start, body in fd.hunks:
        old = [s[1:] for s in body if s[0] != "+"]
        new = [s[1:] for s in body if s[0] != "-"]
        want = max(0, start - 1 + offset) if old else min(len(lines), start + offset)
        candidates = sorted(range(len(lines) - len(old) + 1), key=lambda k: abs(k - want))
        at = next((k for k in candidates if lines[k : k + len(old)] == old), None)
        if at is None:
            raise WorkspaceError(
                f"{fd.path}: hunk at line {start} does not apply (its lines are not in the file)"
            )
        lines[at : at + len(old)] = new
        offset += len(new) - len(old)
    return "".join(s + "\n" for s in lines)


def inside(root: Path, rel: str) -> Path:
    """`root/rel`, refusing absolute paths, `..` and links that lead outside `root`."""
    pure = PurePosixPath(rel)
    if pure.is_absolute() or rel.startswith("~") or ".." in pure.parts:
        raise WorkspaceError(
            f"path {rel!r} refused: use a path relative to the repository root, without '..'"
        )
    target = (root / pure).resolve()
    if not target.is_relative_to(root.resolve()):
        raise WorkspaceError(f"path {rel!r} refused: it leads outside the repository")
    return target


def apply_unified_diff(diff: str, root: Path) -> list[str]:
    """Apply a unified diff under `root` all or nothing; returns the touched paths."""
    planned: dict[Path, str | None] = {}
    for fd in parse_unified_diff(diff):
        target = inside(root, fd.path)
        if fd.new_path is None:
            planned[target] = None
            continue
        old = target.read_text() if fd.old_path is not None and target.is_file() else ""
        if fd.old_path is not None and not target.is_file():
            raise WorkspaceError(f"{fd.path}: the diff changes a file the source does not have")
        planned[target] = apply_hunks(old, fd)
    for target, content in planned.items():
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.moa-tmp")
        tmp.write_text(content)
        if target.exists():
            shutil.copymode(target, tmp)
        tmp.replace(target)  # a new inode: never writes through a hard link into a shared tree
    return [str(p.relative_to(root.resolve())) for p in planned]


# ------------------------------------------------------------------------------ prepared trees


def _cache_root() -> Path:
    return cache_dir() / "prepared"


_PREPARED_THIS_RUN: set[Path] = set()  # `path:` sources are rebuilt once per process


def prepared_tree(language: str, source: str, cache: Path | None = None) -> Path:
    """The clean source made buildable (dependencies fetched) once, cached and shared by every
    workspace of that source. Prepared at its final path (a venv is not relocatable) under a
    lock; the marker, written last, says it is complete, so a crash mid-way is rebuilt."""
    from moa.languages.sources import fetch

    ref = SourceRef.parse(source)
    base = (cache or _cache_root()) / language
    dest = base / ref.slug
    with file_lock(base / f"{ref.slug}.lock"):
        fresh = ref.registry != "path" or dest in _PREPARED_THIS_RUN
        if (dest / _PREPARED_MARKER).is_file() and fresh:
            return dest
        clean = fetch(ref)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(clean, dest, symlinks=True)
        plugin = registry.get(language)
        if plugin.mutation_runner is not None:
            plugin.mutation_runner().prepare(dest)
        (dest / _PREPARED_MARKER).write_text(json.dumps({"source": source, "language": language}))
        _PREPARED_THIS_RUN.add(dest)
    return dest


# ------------------------------------------------------------------------------ the workspace


@dataclass
class Workspace:
    """A private copy of a repository state under `root` (deleted by `close`)."""

    root: Path
    state: RepoState
    touched: tuple[str, ...] = ()  # files the state's diff changed

    @property
    def language(self) -> str:
        return self.state.language

    @classmethod
    def create(cls, state: RepoState, tree: Path | None = None, parent: Path | None = None) -> Workspace:
        """Copy `tree` (default: the prepared tree of `state.source`) and apply `state.diff`."""
        tree = tree or prepared_tree(state.language, state.source)
        if not tree.is_dir():
            raise WorkspaceError(f"source tree {tree} does not exist")
        slug = SourceRef.parse(state.source).slug
        # Not under /tmp by default: the sandbox gives every run a private /tmp, and links
        # that lead there (a judge's copy of this workspace) would dangle inside it.
        parent = parent or _cache_root().parent / "workspaces"
        parent.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix=f"moa-ws-{slug}-", dir=parent)).resolve()
        try:
            dependencies = registry.dependency_dirs()
            top_level_deps = [p for p in tree.iterdir() if p.name in dependencies]
            below, top = build_dirs(), hidden_dirs()

            def skip(folder: str, names: list[str]) -> set[str]:
                hidden = below if Path(folder) != tree else top
                return {n for n in names if n in hidden or n == _PREPARED_MARKER}

            shutil.copytree(tree, root, dirs_exist_ok=True, symlinks=True, ignore=skip)
            for dep in top_level_deps:
                (root / dep.name).symlink_to(dep.resolve(), target_is_directory=True)
            touched = apply_unified_diff(state.diff, root) if state.diff.strip() else []
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root, state, tuple(touched))

    def path(self, rel: str) -> Path:
        return inside(self.root, rel)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
