"""Go mutation testing with Gremlins (github.com/go-gremlins/gremlins).

Why Gremlins: of the Go mutation tools, it is the one still maintained and published with
release tags (v0.6.0, December 2025) on the Go module proxy, so `go install MODULE@VERSION`
pins it exactly. zimmski/go-mutesting and its avito-tech fork have no tagged releases and the
proxy reachable here refuses them (403), so they cannot be installed reproducibly.

How it is used: Gremlins finds the mutants (token mutations at `file:line:column` with a type
such as CONDITIONALS_NEGATION) and which of them the tests cover (`unleash --dry-run`, one
coverage run). Its report says only KILLED/LIVED per position, without the mutated source or
which test failed, so we execute each mutant ourselves exactly as Gremlins does - apply the
token swap, `go test -failfast -timeout T` on the mutated file's package - inside the sandbox,
and keep the diff, the failing tests and their output. Mutants the tests do not cover are
recorded as `missed` without running anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from moa.api.records import SUITE_FAILURE, FailingTest, MutationRecord, MutationStatus, SourceRef
from moa.languages import go, sandbox
from moa.languages.base import FunctionSpan, enclosing
from moa.languages.go.functions import functions
from moa.languages.tools import (
    DiffError,
    RunnerBase,
    ToolError,
    check_call,
    excerpt,
    install_once,
    mutant_diff,
    mutant_timeout,
)

GREMLINS = "github.com/go-gremlins/gremlins/cmd/gremlins"
GREMLINS_VERSION = "v0.6.0"

# Gremlins' token swaps (internal/engine/mappings.go at v0.6.0), keyed by its mutant type.
# REM_ASSIGN -> REM_ASSIGN under INVERT_ASSIGNMENTS is a no-op upstream; it is left out.
SWAPS: dict[str, dict[str, str]] = {
    "ARITHMETIC_BASE": {"+": "-", "*": "/", "/": "*", "%": "*", "-": "+"},
    "CONDITIONALS_BOUNDARY": {">=": ">", ">": ">=", "<=": "<", "<": "<="},
    "CONDITIONALS_NEGATION": {"==": "!=", ">=": "<", ">": "<=", "<=": ">", "<": ">=", "!=": "=="},
    "INCREMENT_DECREMENT": {"--": "++", "++": "--"},
    "INVERT_ASSIGNMENTS": {"+=": "-=", "*=": "/=", "/=": "*=", "-=": "+="},
    "INVERT_BITWISE": {"&": "|", "|": "&", "^": "&", "&^": "&", "<<": ">>", ">>": "<<"},
    "INVERT_BWASSIGN": {"&=": "|=", "|=": "&=", "^=": "&=", "&^=": "&=", "<<=": ">>=", ">>=": "<<="},
    "INVERT_LOGICAL": {"&&": "||", "||": "&&"},
    "INVERT_LOOPCTRL": {"break": "continue", "continue": "break"},
    "INVERT_NEGATIVES": {"-": "+"},
    "REMOVE_SELF_ASSIGNMENTS": {
        op: "=" for op in ("+=", "&=", "&^=", "*=", "|=", "/=", "%=", "<<=", ">>=", "-=", "^=")
    },
}
# Each mutant type's bug class (moa.languages.sampling): what a spec's operator mix selects.
CLASSES: dict[str, str] = {
    "ARITHMETIC_BASE": "arithmetic",
    "CONDITIONALS_BOUNDARY": "boundary",
    "CONDITIONALS_NEGATION": "comparison",
    "INCREMENT_DECREMENT": "arithmetic",
    "INVERT_ASSIGNMENTS": "arithmetic",
    "INVERT_BITWISE": "arithmetic",
    "INVERT_BWASSIGN": "arithmetic",
    "INVERT_LOGICAL": "boolean",
    "INVERT_LOOPCTRL": "other",
    "INVERT_NEGATIVES": "arithmetic",
    "REMOVE_SELF_ASSIGNMENTS": "arithmetic",
}
_ALL_TYPES = ("invert-assignments", "invert-bitwise", "invert-bwassign", "invert-logical", "invert-loopctrl")
_ENABLE_ALL = [f"--{flag}" for flag in _ALL_TYPES] + ["--remove-self-assignments"]
# Longest first, so `<<=` is read as one token and not as `<`.
_TOKENS = sorted({tok for swaps in SWAPS.values() for tok in swaps}, key=len, reverse=True)
_BUILD_FAILED = re.compile(r"\[(build|setup) failed\]|^# \S+\n", re.MULTILINE)


@cache
def _go_env() -> dict[str, str]:
    out = subprocess.run(
        ["go", "env", "-json", "GOCACHE", "GOMODCACHE"], capture_output=True, text=True, check=True
    )
    paths: dict[str, str] = json.loads(out.stdout)
    return paths


@dataclass(frozen=True)
class Mutant:
    file: str  # relative to the module root
    line: int
    column: int
    type: str
    covered: bool


@dataclass
class GoMutationRunner(RunnerBase):
    """Gremlins finds the mutants; each one is built and tested here, sandboxed and offline."""

    tool: str = f"gremlins@{GREMLINS_VERSION}"

    def tool_path(self) -> Path:
        """The gremlins binary, installed on first use."""

        def install(folder: Path) -> None:
            check_call(
                ["go", "install", f"{GREMLINS}@{GREMLINS_VERSION}"],
                folder,
                {"GOBIN": str(folder)},
                "go install",
            )

        return install_once("go", lambda d: (d / "gremlins").is_file(), install) / "gremlins"

    def prepare(self, repo: Path) -> None:
        """Download the module's dependencies (network), then compile the tests once offline."""
        if not (repo / "go.mod").is_file():
            raise ToolError(f"{repo} has no go.mod: Go sources must be modules (go:MODULE@VERSION)")
        env = self._env(offline=False)
        check_call(["go", "mod", "download"], repo, env, "go mod download")
        # Module zips carry no go.sum for their dependencies; record them while the network is up.
        check_call(["go", "mod", "tidy", "-e"], repo, env, "go mod tidy")
        self._go_test(repo, ["-run", "^$", "./..."], 900.0)  # warms the build cache; baseline judges

    def baseline(self, repo: Path, timeout_s: float, exclude_tests: Sequence[str] = ()) -> tuple[bool, str]:
        res, _ = self._go_test(repo, [*_skip(exclude_tests), "./..."], timeout_s)
        return self.baseline_result(res, limit=4000)

    def failing_tests(self, output: str) -> list[str]:
        """The tests a baseline's report (the text of its `go test -json` events) names as failed."""
        return list(dict.fromkeys(n for p in go.plugin.failing_test_patterns for n in p.findall(output)))

    def run(
        self,
        repo: Path,
        source: SourceRef,
        max_mutations: int | None,
        timeout_s: float,
        exclude_tests: Sequence[str] = (),
    ) -> list[MutationRecord]:
        """`max_mutations` mutants of the module (all when None), drawn by `self.draw`.

        `timeout_s` is the budget of the whole run; each mutant's `go test` gets
        `mutant_timeout(baseline)`. `exclude_tests` (flaky tests) are skipped with `-skip`.
        """
        spans: dict[str, list[FunctionSpan]] = {}

        def key(m: Mutant) -> tuple[str, str, str]:
            if m.file not in spans:
                spans[m.file] = functions(m.file, (repo / m.file).read_text())
            return m.file, enclosing(spans[m.file], m.line) or "", CLASSES.get(m.type, "other")

        mutants = self.draw(self.find_mutants(repo), max_mutations, key)
        deadline = time.monotonic() + timeout_s
        per_mutant = mutant_timeout(self.baseline_s, timeout_s)
        skip = _skip(exclude_tests)
        copies = [repo] + [self._copy(repo) for _ in range(max(0, min(self.jobs, len(mutants)) - 1))]
        free: queue.SimpleQueue[Path] = queue.SimpleQueue()
        for copy in copies:
            free.put(copy)

        def one(m: Mutant) -> MutationRecord | None:
            if time.monotonic() > deadline:  # over budget: keep what is done, skip the rest
                return None
            copy = free.get()  # one mutant at a time per copy of the module
            try:
                return self._execute(copy, source, m, per_mutant, skip)
            finally:
                free.put(copy)

        try:
            with ThreadPoolExecutor(max_workers=len(copies)) as pool:
                return [r for r in pool.map(one, mutants) if r is not None]
        finally:
            for copy in copies[1:]:
                shutil.rmtree(copy.parent, ignore_errors=True)

    def raw_command(self, repo: Path) -> tuple[list[str], dict[str, str], tuple[int, ...]]:
        """Gremlins as a person runs it on the whole module (bench/datagen_overhead.py): argv,
        environment, the exit codes of a finished run."""
        cmd = [str(self.tool_path()), "unleash", *_ENABLE_ALL, "--workers", str(self.jobs), "."]
        return cmd, self._env(offline=True), (0,)

    def find_mutants(self, repo: Path) -> list[Mutant]:
        """Gremlins' dry run: every mutant position and whether a test covers it."""
        gremlins = self.tool_path()
        with tempfile.TemporaryDirectory(prefix="moa-gremlins-") as out_dir:
            report = Path(out_dir) / "gremlins.json"
            res = sandbox.run(
                [str(gremlins), "unleash", "--dry-run", *_ENABLE_ALL, "-o", str(report), "."],
                repo,
                writable=[Path(out_dir), *self._caches()],
                env=self._env(offline=True),
                limits=sandbox.Limits(timeout_s=1800),
            )
            if not res.ok or not report.is_file():
                raise ToolError(
                    f"gremlins dry run failed in {repo} (exit {res.returncode}):\n{excerpt(res.output)}"
                )
            return parse_report(json.loads(report.read_text()))

    # ------------------------------------------------------------------ internals

    def _execute(
        self, repo: Path, source: SourceRef, m: Mutant, timeout_s: float, skip: list[str]
    ) -> MutationRecord | None:
        path = repo / m.file
        fixed = path.read_text()
        buggy, operator = apply_mutant(fixed, m)
        try:
            diff = mutant_diff(m.file, fixed, buggy)
        except DiffError:
            self.rejected["diff_roundtrip"] += 1
            return None
        record = MutationRecord(
            language="go",
            source=str(source),
            version=source.version,
            file=m.file,
            function=enclosing(functions(m.file, fixed), m.line),
            line=m.line,
            operator=operator,
            operator_class=CLASSES.get(m.type, "other"),
            diff=diff,
            status="missed",
            tool=self.tool,
        )
        if not m.covered:  # no test executes this line: it cannot be caught
            return record
        pkg = "./" + (str(Path(m.file).parent) if Path(m.file).parent != Path(".") else "")
        path.write_text(buggy)
        try:
            res, failed = self._go_test(
                repo, ["-failfast", "-timeout", f"{int(timeout_s) + 2}s", *skip, pkg], timeout_s + 30
            )
        finally:
            path.write_text(fixed)
        record.status, record.failing_tests = classify(res, failed)
        record.timings = {"test_s": round(res.seconds, 3)}
        return record

    def _go_test(self, repo: Path, args: list[str], timeout_s: float) -> tuple[sandbox.Result, list[str]]:
        """`go test -json`: the result with the report's text as output, and the failed tests."""
        res = sandbox.run(
            ["go", "test", "-json", "-count=1", *args],
            repo,
            writable=self._caches(),
            env=self._env(offline=True),
            limits=sandbox.Limits(timeout_s=timeout_s),
        )
        text, failed = read_events(res.output)
        return dataclasses.replace(res, output=text), failed

    def _caches(self) -> list[Path]:
        # The build cache is written by every build; the module cache only read, but Go takes
        # lock files in it, so both are bound writable (neither holds secrets).
        return [Path(_go_env()["GOCACHE"]), Path(_go_env()["GOMODCACHE"])]

    def _env(self, offline: bool) -> dict[str, str]:
        env = {**_go_env(), "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "PATH": os.environ.get("PATH", "")}
        if offline:
            env |= {"GOPROXY": "off", "GOSUMDB": "off"}
        return env

    @staticmethod
    def _copy(repo: Path) -> Path:
        dest = Path(tempfile.mkdtemp(prefix="moa-go-mutant-")) / repo.name
        shutil.copytree(repo, dest, symlinks=True)
        return dest


def parse_report(report: dict[str, object]) -> list[Mutant]:
    """Gremlins' JSON (`-o`) into mutants, in a stable order (Gremlins' own order varies)."""
    mutants = []
    files = report.get("files") or []
    assert isinstance(files, list)
    for f in files:
        for m in f.get("mutations") or []:
            if m["status"] not in ("RUNNABLE", "NOT COVERED"):
                continue
            mutants.append(
                Mutant(f["file_name"], m["line"], m["column"], m["type"], m["status"] == "RUNNABLE")
            )
    return sorted(mutants, key=lambda m: (m.file, m.line, m.column, m.type))


def apply_mutant(text: str, m: Mutant) -> tuple[str, str]:
    """The mutated file text and an operator description such as `CONDITIONALS_NEGATION: == -> !=`."""
    lines = text.splitlines(keepends=True)
    line = lines[m.line - 1]
    # Go columns count bytes from 1.
    raw = line.encode()
    at = m.column - 1
    token = next((t for t in _TOKENS if raw.startswith(t.encode(), at)), None)
    swaps = SWAPS.get(m.type, {})
    if token is None or token not in swaps:
        raise ToolError(
            f"{m.file}:{m.line}:{m.column}: no {m.type} token here ({line.strip()!r}); Gremlins version mismatch?"
        )
    new = swaps[token]
    lines[m.line - 1] = (raw[:at] + new.encode() + raw[at + len(token.encode()) :]).decode()
    return "".join(lines), f"{m.type}: {token} -> {new}"


def _skip(tests: Sequence[str]) -> list[str]:
    """`go test` arguments that skip `tests` (flaky, or red at baseline) by exact name."""
    return ["-skip", "^(" + "|".join(re.escape(t) for t in tests) + ")$"] if tests else []


def read_events(output: str) -> tuple[str, list[str]]:
    """`go test -json` output -> (the report as `go test` prints it, the tests that failed).

    Lines that are not events (the go command's own errors on stderr) are kept as text."""
    text: list[str] = []
    failed: list[str] = []
    for line in output.splitlines(keepends=True):
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            text.append(line)
        elif event.get("Action") in ("output", "build-output"):
            text.append(str(event.get("Output", "")))
        elif event.get("Action") == "fail" and event.get("Test"):
            failed.append(str(event["Test"]))
    return "".join(text), list(dict.fromkeys(failed))


def classify(res: sandbox.Result, failed: list[str]) -> tuple[MutationStatus, list[FailingTest]]:
    """A mutated package's `go test -json` result (as text) and failed tests -> status, tests."""
    if res.timed_out or "panic: test timed out" in res.output:
        return "timeout", []
    if res.ok:
        return "missed", []
    if _BUILD_FAILED.search(res.output) and not failed:
        return "unviable", []
    text = excerpt(res.output, 1500)
    return "caught", [FailingTest(name=n, excerpt=text) for n in failed] or [
        FailingTest(name=SUITE_FAILURE, excerpt=text)
    ]
