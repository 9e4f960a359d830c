"""What the mutation runners share: where tools are installed, the install lock, diffs, excerpts.

Why a lock: several mutate shards (processes, or pods on one cache volume) may start at the same
time on a fresh machine; the first installs the tool, the others wait and then find it there.
Installs go to a temporary folder that is renamed into place, so a crash never leaves a
half-installed tool that later runs would trust.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from moa.languages import sandbox
from moa.languages.sampling import stratified

T = TypeVar("T")

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes some test libraries print regardless


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


TIMED_OUT = "timed out\n"  # how a baseline() output starts when the run hit its time limit


class DiffError(ValueError):
    """A diff that is malformed, does not apply exactly, or does not re-create its mutant."""


class ToolError(RuntimeError):
    """A mutation tool could not be installed or run; the message says what to do next."""


def cache_dir() -> Path:
    return Path(os.environ.get("MOA_CACHE", Path.home() / ".cache" / "moa"))


def tools_dir() -> Path:
    """Where mutation tools live: MOA_TOOLS when set (an image's baked, read-only tools), else the cache."""
    baked = os.environ.get("MOA_TOOLS")
    return Path(baked) if baked else cache_dir() / "tools"


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive lock on the file `path` (created with its folder), shared by processes and
    by pods on one cache volume. Yields True once held; with `blocking=False`, False at once
    when another holder has it (the caller then does something else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive, cross-process lock named `name` (held while installing a tool)."""
    with file_lock(cache_dir() / "locks" / f"{name}.lock"):  # writable even where tools are baked
        yield


def install_once(name: str, ready: Callable[[Path], bool], install: Callable[[Path], None]) -> Path:
    """The install folder of tool `name`, installing it with `install(tmp)` on first use.

    `ready(folder)` tells whether a folder holds a usable install; `install` fills a fresh
    temporary folder, which is renamed to `tools_dir()/name` only once it succeeded.
    """
    dest = tools_dir() / name
    if ready(dest):
        return dest
    with locked(name):
        if ready(dest):  # another process installed it while we waited
            return dest
        tmp = dest.with_name(f".{name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            install(tmp)
            if not ready(tmp):
                raise ToolError(f"installing {name} into {tmp} finished but the tool is not there")
            shutil.rmtree(dest, ignore_errors=True)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


SETUP_SCRATCH = "moa-setup-"  # a setup command's TMPDIR: {tmp}/moa-setup-{pid}-XXXX
_setup_stale_cleaned = False


@contextlib.contextmanager
def setup_tmpdir() -> Iterator[Path]:
    """A private TMPDIR for one setup command, removed after it. pip (build and unpack folders)
    and `python -m venv` (ensurepip's wheels) leave theirs in TMPDIR when killed; the first use
    in a process removes those of processes that died (as the sandbox does for its scratch)."""
    global _setup_stale_cleaned
    if not _setup_stale_cleaned:
        _setup_stale_cleaned = True
        sandbox.remove_orphaned_scratch(SETUP_SCRATCH)
    folder = Path(tempfile.mkdtemp(prefix=f"{SETUP_SCRATCH}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_call(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None, what: str = "") -> str:
    """Run a trusted setup command (installs, downloads) with network; raise with its output tail."""
    with setup_tmpdir() as tmp:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env={**os.environ, "TMPDIR": str(tmp), **(env or {})},
            capture_output=True,
            text=True,
            errors="replace",
        )
    if proc.returncode != 0:
        tail = excerpt(proc.stdout + proc.stderr, 3000)
        raise ToolError(f"{what or cmd[0]} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    return proc.stdout


def file_diff(path: str, fixed: str, buggy: str) -> str:
    """A file-level unified diff fixed -> buggy, with git-style a/ b/ headers."""
    lines = difflib.unified_diff(
        fixed.splitlines(keepends=True), buggy.splitlines(keepends=True), f"a/{path}", f"b/{path}", n=3
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _hunks(diff: str) -> list[tuple[int, list[tuple[str, str]]]]:
    """A one-file unified diff as (0-based start in the old file, [(tag, line)]) per hunk."""
    hunks: list[tuple[int, list[tuple[str, str]]]] = []
    for n, line in enumerate(diff.splitlines(keepends=True), 1):
        if line.startswith("@@"):
            m = _HUNK.match(line)
            if not m:
                raise DiffError(f"diff line {n}: bad hunk header {line.strip()!r}")
            empty = m[2] == "0"  # a pure insertion names the line it follows
            hunks.append((int(m[1]) - (0 if empty else 1), []))
        elif not hunks:
            if not line.startswith(("---", "+++", "diff ", "index ")):
                raise DiffError(f"diff line {n}: text before the first hunk: {line.strip()!r}")
        elif line.startswith("\\"):  # "\ No newline at end of file" ends the line before it
            tag, text = hunks[-1][1][-1]
            hunks[-1][1][-1] = (tag, text.rstrip("\n"))
        elif line[:1] in (" ", "-", "+"):
            hunks[-1][1].append((line[0], line[1:]))
        else:
            raise DiffError(f"diff line {n}: not a diff line: {line.strip()!r}")
    if not hunks:
        raise DiffError("the diff has no hunk")
    return hunks


def apply_unified(text: str, diff: str) -> str:
    """`text` with a one-file unified diff applied exactly: no fuzz, no offset, context checked."""
    src = text.splitlines(keepends=True)
    out: list[str] = []
    pos = 0
    for start, body in _hunks(diff):
        if start < pos:
            raise DiffError(f"hunk at line {start + 1} overlaps the one before")
        out += src[pos:start]
        i = start
        for tag, line in body:
            if tag != "+":
                if i >= len(src) or src[i] != line:
                    raise DiffError(f"line {i + 1} differs from the diff's {line.rstrip()!r}")
                i += 1
            if tag != "-":
                out.append(line)
        pos = i
    return "".join(out + src[pos:])


def changed_lines(diff: str) -> list[int]:
    """Lines (1-based, of the old file) a diff removes, or after which it inserts."""
    lines = []
    for start, body in _hunks(diff):
        old = start + 1
        for tag, _ in body:
            if tag == "+":
                lines.append(max(1, old - 1))
            else:
                if tag == "-":
                    lines.append(old)
                old += 1
    return sorted(set(lines))


def mutant_diff(path: str, fixed: str, buggy: str) -> str:
    """The fixed -> buggy diff of a mutant, checked to re-create `buggy` byte for byte."""
    diff = file_diff(path, fixed, buggy)
    if not diff:
        raise DiffError(f"{path}: the mutant does not change the file")
    if apply_unified(fixed, diff) != buggy:
        raise DiffError(f"{path}: the diff does not re-create the mutant")
    return diff


def excerpt(text: str, limit: int = 2000) -> str:
    """The end of a tool's output, where the failure usually is, at most `limit` characters."""
    text = _ANSI.sub("", text).strip()
    if len(text) <= limit:
        return text
    return "...\n" + text[-limit:].split("\n", 1)[-1]


def replace_span(text: str, line1: int, col1: int, line2: int, col2: int, replacement: str) -> str:
    """`text` with the span [start, end) between two 1-based (line, column) positions replaced.

    Columns count characters (Stryker's and cargo-mutants' convention), not bytes.
    """
    a, b = span_offsets(text, line1, col1, line2, col2)
    return text[:a] + replacement + text[b:]


def span_offsets(text: str, line1: int, col1: int, line2: int, col2: int) -> tuple[int, int]:
    """Character offsets in `text` of the span between two 1-based (line, column) positions."""
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return offsets[line1 - 1] + col1 - 1, offsets[line2 - 1] + col2 - 1


TIMEOUT_FACTOR = 5.0  # a mutant's tests may take this multiple of the green baseline


def mutant_timeout(baseline_s: float | None, budget_s: float) -> float:
    """Seconds one mutant's tests may take: TIMEOUT_FACTOR times the green baseline (at least 30 s).

    Why: a mutant that loops forever must not eat the whole source's budget, while a slow but
    honest suite must not be cut short. Without a measured baseline, 300 s; never over budget.
    """
    guess = 300.0 if baseline_s is None else max(30.0, TIMEOUT_FACTOR * baseline_s)
    return min(budget_s, guess)


@dataclass
class RunnerBase:
    """What the mutation runners share: parallel jobs and the measured green baseline."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)  # mutants tested in parallel
    baseline_s: float | None = None  # slowest green baseline seen; sets the per-mutant timeout
    # Mutants whose record could not be made right (reason -> count): dropped, never guessed.
    rejected: Counter[str] = field(default_factory=Counter)
    # The bug classes to draw mutants from (moa.languages.sampling), None for all; and the seed.
    operator_classes: tuple[str, ...] | None = None
    seed: int = 0

    def draw(self, items: Sequence[T], n: int | None, key: Callable[[T], tuple[str, str, str]]) -> list[T]:
        """The mutants to run: those of an allowed bug class (key: file, function, class), then a
        seeded stratified draw of at most `n`; the others are counted as `operator_excluded`."""
        allowed = [i for i in items if self.operator_classes is None or key(i)[2] in self.operator_classes]
        if len(allowed) < len(items):
            self.rejected["operator_excluded"] += len(items) - len(allowed)
        return stratified(allowed, n, self.seed, key)

    def ensure_tool(self) -> None:
        self.tool_path()

    def tool_path(self) -> Path:
        raise NotImplementedError

    def note_baseline(self, ok: bool, seconds: float) -> None:
        if ok:
            self.baseline_s = max(self.baseline_s or 0.0, seconds)

    def baseline_result(self, res: sandbox.Result, limit: int = 2000) -> tuple[bool, str]:
        """Record a baseline run and answer `baseline()`: (green, output excerpt)."""
        self.note_baseline(res.ok, res.seconds)
        return res.ok, (TIMED_OUT if res.timed_out else "") + excerpt(res.output, limit)
