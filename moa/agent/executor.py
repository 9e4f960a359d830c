"""Runs the agent's tools (`moa.harmony.tools.AGENT_TOOLS`) against a workspace.

One executor serves every place an agent acts: oracle and model-teacher trajectories,
preference sampling, GRPO rollouts and eval. Its API is one call,
`Executor(workspace).call(name, args_json) -> Observation`, so the observation a model is
trained on is exactly the one it later gets. Calls are checked against the same JSON
schemas the developer message shows the model; an unknown tool, arguments that break the
schema, a patch that does not parse or apply, or a path outside the repository is an
*invalid* call: it gets an error observation (the agent may recover) and is counted (the
GRPO reward and the eval's tool-call accuracy read the count).

Outputs are capped so one call cannot flood the context: long files are shown by line
ranges, listings and searches stop at a limit and say so, test output keeps its head and
its tail (where the summary is) with the failing test names pulled out on top.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The agent's search patterns run on `regex`, not `re`: a pattern that backtracks
# catastrophically (`(a|aa)+$` on a long line) runs for hours, and `re` cannot be stopped from a
# worker thread (trajectories runs episodes in threads); `regex` takes a timeout per match.
import regex

from moa.agent.workspace import Workspace, WorkspaceError, hidden_dirs, inside
from moa.harmony import patch as harmony_patch
from moa.harmony.model import Message
from moa.harmony.tools import AGENT_TOOLS, parse_call
from moa.languages import registry


@dataclass(frozen=True)
class Observation:
    """What the agent sees after a call. `ok`: the tool did what was asked (a test run that
    finds failures is ok); `invalid`: the call itself was malformed or refused."""

    text: str
    ok: bool
    invalid: bool = False


@dataclass(frozen=True)
class TestRun:
    passed: bool
    failing: tuple[str, ...]
    output: str
    timed_out: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Caps:
    read_lines: int = 400  # lines per read_file call
    read_bytes: int = 2_000_000  # larger files are refused (generated or data files)
    line_chars: int = 400  # a longer line is cut
    list_entries: int = 300
    search_results: int = 200
    search_file_bytes: int = 1_000_000
    search_seconds: float = 10.0  # matching time of one search call; a slower pattern is refused
    output_chars: int = 8000  # test output kept (head + tail)
    test_timeout_s: float = 300.0
    call_chars: int = 1 << 20  # arguments of one call (a patch included); larger calls are refused


def failing_tests(output: str, patterns: Sequence[re.Pattern[str]] | None = None) -> tuple[str, ...]:
    """Names of failing tests in a runner's output, in the order printed. `patterns` are the
    language plugin's `failing_test_patterns` (default: every installed plugin's); each
    pattern's group 1 is a test name."""
    found: dict[str, int] = {}
    for pattern in registry.failing_test_patterns() if patterns is None else patterns:
        for m in pattern.finditer(output):
            if not m[1].startswith("["):
                found[m[1]] = min(found.get(m[1], m.start()), m.start())
    return tuple(sorted(found, key=found.__getitem__))


def glob_match(rel: str, pattern: str) -> bool:
    """Shell glob on a relative path: `*` stays within a folder, `**` crosses folders."""
    if "**" in pattern:
        return fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(rel, pattern.replace("**/", ""))
    parts, pats = rel.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(
        fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pats, strict=True)
    )


def truncate(text: str, limit: int) -> str:
    """Keep the head and (mostly) the tail, where runners print their summary."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 4], text[-(limit - limit // 4) :]
    omitted = text[len(head) : len(text) - len(tail)].count("\n")
    return f"{head}\n[... {omitted} lines omitted ...]\n{tail}"


# A test runner: (repo, selected tests, timeout) -> the run.
TestRunner = Callable[[Path, Sequence[str], float], TestRun]


def test_runner(language: str) -> TestRunner:
    """run_tests through the language's evaluator, so the agent's tests are the judge's tests:
    its build step (a compile error is what the agent must see first), then its test step, in
    its sandbox (no network, limits, one overall timeout)."""
    from moa.languages.evaluators import Runner, get_evaluator

    evaluator: Any = get_evaluator(language)
    patterns = registry.get(language).failing_test_patterns
    selectable = "tests" in inspect.signature(evaluator.test).parameters

    def run(repo: Path, tests: Sequence[str], timeout_s: float) -> TestRun:
        start = time.monotonic()
        runner = Runner(evaluator.sandbox(repo), repo, start + timeout_s)
        built = evaluator.build(repo, runner)
        if not built.ok:
            output = "build failed:\n" + _relative(built.output, repo)
            return TestRun(
                False, failing_tests(output, patterns), output, built.timed_out, time.monotonic() - start
            )
        note = ""
        if tests and selectable:
            result = evaluator.test(repo, runner, tests=list(tests)).result
        else:
            result = evaluator.test(repo, runner).result
            note = f"[test selection is not supported for {language}; ran the whole suite]\n" if tests else ""
        passed = result.returncode == 0 and not result.timed_out
        output = note + _relative(result.output, repo)
        return TestRun(
            passed, failing_tests(output, patterns), output, result.timed_out, time.monotonic() - start
        )

    return run


@dataclass
class Executor:
    """Runs tool calls in `workspace`; counts them; remembers the last test run."""

    workspace: Workspace
    runner: TestRunner | None = None
    caps: Caps = field(default_factory=Caps)
    calls: int = 0
    invalid_calls: int = 0
    last_tests: TestRun | None = None

    def __post_init__(self) -> None:
        self.root = self.workspace.root.resolve()
        self._tools: dict[str, Callable[[dict[str, Any]], Observation]] = {
            "read_file": self._read_file,
            "list_files": self._list_files,
            "search": self._search,
            "apply_patch": self._apply_patch,
            "run_tests": self._run_tests,
        }

    def call(self, name: str, args_json: str | dict[str, Any]) -> Observation:
        """Never raises: whatever a model sends (NUL bytes, lone surrogates, paths outside,
        megabytes of arguments) comes back as an error observation."""
        self.calls += 1
        try:
            text = args_json if isinstance(args_json, str) else json.dumps(args_json)
        except (TypeError, ValueError) as exc:
            return self._invalid(f"invalid call to {name}: arguments are not JSON ({exc})")
        if len(text) > self.caps.call_chars:
            return self._invalid(
                f"invalid call to {name}: the arguments are {len(text)} characters; the limit is {self.caps.call_chars}"
            )
        message = Message(
            "assistant", text, channel="commentary", recipient=f"functions.{name}", content_type="json"
        )
        parsed = parse_call(message, AGENT_TOOLS)
        if parsed is None or parsed.problems or parsed.arguments is None or name not in self._tools:
            problems = parsed.problems if parsed is not None else ("not a tool call",)
            return self._invalid(f"invalid call to {name}: " + "; ".join(problems))
        refused = _unusable_text(parsed.arguments)
        if refused:
            return self._invalid(f"invalid call to {name}: {refused}")
        try:
            obs = self._tools[name](parsed.arguments)
        except (WorkspaceError, harmony_patch.PatchError, ValueError) as exc:
            return self._invalid(f"{name}: {exc}")
        except OSError as exc:  # the file system said no (permissions, a name too long): not the call's fault
            return Observation(_shown(f"error: {name}: {exc.strerror or exc}"), ok=False)
        return Observation(_shown(obs.text), obs.ok, obs.invalid)

    def _invalid(self, text: str) -> Observation:
        self.invalid_calls += 1
        return Observation(_shown(f"error: {text}"), ok=False, invalid=True)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() or "."

    # --- tools ---------------------------------------------------------------------------------

    def _read_file(self, args: dict[str, Any]) -> Observation:
        path = inside(self.root, args["path"])
        if path.is_dir():
            return Observation(f"error: {args['path']} is a folder; use list_files", ok=False)
        if not path.is_file():
            return Observation(f"error: {args['path']} does not exist", ok=False)
        if path.stat().st_size > self.caps.read_bytes:
            return Observation(
                f"error: {args['path']} is {path.stat().st_size} bytes, too large to read", ok=False
            )
        try:
            lines = path.read_bytes().decode("utf-8").splitlines()
        except UnicodeDecodeError:
            return Observation(f"error: {args['path']} is not a UTF-8 text file", ok=False)
        start = max(1, int(args.get("start_line", 1)))
        end = min(int(args.get("end_line", len(lines))), len(lines), start + self.caps.read_lines - 1)
        if start > max(1, len(lines)):
            return Observation(
                f"error: {args['path']} has {len(lines)} lines; start_line {start} is past the end", ok=False
            )
        shown = [f"{n:>5}\t{self._cut(lines[n - 1])}" for n in range(start, end + 1)]
        note = (
            f"\n[lines {start}-{end} of {len(lines)}; read more with start_line={end + 1}]"
            if end < len(lines)
            else ""
        )
        return Observation("\n".join(shown) + note if shown else "(empty file)", ok=True)

    def _cut(self, line: str) -> str:
        cap = self.caps.line_chars
        return line if len(line) <= cap else line[:cap] + f" [... {len(line) - cap} more characters]"

    def _visible(self, base: Path, max_depth: int) -> list[Path]:
        """Files and folders under `base`, breadth first, hiding build and dependency folders
        and not following links out of the tree."""
        found: list[Path] = []
        level = [base]
        hidden = hidden_dirs()
        for _ in range(max_depth):
            following: list[Path] = []
            for folder in level:
                for child in sorted(folder.iterdir(), key=lambda p: p.name):
                    if child.name in hidden or child.name.startswith(".moa"):
                        continue
                    found.append(child)
                    if child.is_dir() and not child.is_symlink():
                        following.append(child)
            level = following
            if not level:  # a model may ask for any depth: stop where the tree does
                break
        return found

    def _list_files(self, args: dict[str, Any]) -> Observation:
        raw = str(args.get("path", ".")) or "."
        glob = None
        if any(c in raw for c in "*?["):  # a glob: list what matches under its fixed prefix
            fixed = raw.split("/")
            prefix = "/".join(
                p for p in fixed[: next(i for i, p in enumerate(fixed) if any(c in p for c in "*?["))]
            )
            raw, glob = prefix or ".", args["path"]
        base = inside(self.root, raw)
        if not base.is_dir():
            return Observation(
                f"error: {raw} is not a folder"
                + (" (it is a file; use read_file)" if base.is_file() else ""),
                ok=False,
            )
        depth = int(args.get("max_depth", 3)) if glob is None else 32
        entries = self._visible(base, depth)
        if glob is not None:
            entries = [p for p in entries if p.is_file() and glob_match(self._rel(p), glob)]
        rows = [self._rel(p) + ("/" if p.is_dir() else "") for p in entries]
        rows.sort()
        text = "\n".join(rows[: self.caps.list_entries]) or "(no files)"
        if len(rows) > self.caps.list_entries:
            text += f"\n[{len(rows) - self.caps.list_entries} more entries not shown; list a subfolder]"
        return Observation(text, ok=True)

    def _search(self, args: dict[str, Any]) -> Observation:
        pattern_text = str(args["pattern"])
        note = ""
        try:
            pattern = regex.compile(pattern_text)
        except (regex.error, RecursionError) as exc:  # nesting too deep to compile: literal text too
            pattern = regex.compile(regex.escape(pattern_text))
            note = f"[not a valid regular expression ({exc}); searched for the literal text]\n"
        base = inside(self.root, str(args.get("path", ".")) or ".")
        if not base.exists():
            return Observation(f"error: {args.get('path')} does not exist", ok=False)
        limit = min(int(args.get("max_results", 50)), self.caps.search_results)
        files = [base] if base.is_file() else [p for p in self._visible(base, 64) if p.is_file()]
        files = [p for p in files if p.resolve().is_relative_to(self.root)]  # no links out of the repo
        hits: list[str] = []
        more = False
        deadline = time.monotonic() + self.caps.search_seconds
        for path in files:
            if path.stat().st_size > self.caps.search_file_bytes:
                continue
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    found = pattern.search(line, timeout=max(deadline - time.monotonic(), 1e-3))
                except TimeoutError:
                    return Observation(
                        f"error: searching for {pattern_text!r} took over {self.caps.search_seconds:g}s "
                        f"(stopped at {self._rel(path)}:{n}); the pattern backtracks too much: "
                        "simplify it (no nested or overlapping repetition such as (a+)+ or (a|aa)+) or narrow the path",
                        ok=False,
                    )
                if found:
                    if len(hits) == limit:
                        more = True
                        break
                    hits.append(f"{self._rel(path)}:{n}: {self._cut(line.strip())}")
            if more:
                break
        if not hits:
            return Observation(note + f"no matches for {pattern_text!r}", ok=True)
        tail = f"\n[stopped after {limit} matches; narrow the pattern or the path]" if more else ""
        return Observation(note + "\n".join(hits) + tail, ok=True)

    def _apply_patch(self, args: dict[str, Any]) -> Observation:
        done = harmony_patch.apply(str(args["patch"]), self.root)
        return Observation(str(done), ok=True)

    def _run_tests(self, args: dict[str, Any]) -> Observation:
        if self.runner is None:
            self.runner = test_runner(self.workspace.language)
        tests = [str(t) for t in args.get("tests", [])]
        run = self.runner(self.root, tests, self.caps.test_timeout_s)
        self.last_tests = run
        return Observation(describe_test_run(run, self.caps.output_chars), ok=True)


def _relative(output: str, repo: Path) -> str:
    """Runner output as the agent should see it: paths relative to the repository, without
    the judge's command lines (host paths that mean nothing to the model)."""
    lines = [line for line in output.splitlines() if not line.startswith("$ ")]
    return "\n".join(lines).replace(str(repo) + "/", "").replace(str(repo), ".")


def _shown(text: str) -> str:
    """An observation as the model may see it. Repository text may contain `<|...|>`; a word
    joiner keeps it from reading as a Harmony special token (which would end the message early
    or become a control id). A file name that is not UTF-8 (surrogate-escaped by the OS layer)
    is shown with escapes, so the text encodes anywhere downstream."""
    return text.replace("<|", "<\u2060|").encode("utf-8", "backslashreplace").decode("utf-8")


def _unusable_text(value: Any, where: str = "arguments") -> str | None:
    """Why a decoded argument cannot reach the file system or a file, or None."""
    if isinstance(value, dict):
        return next((r for k, v in value.items() if (r := _unusable_text(v, f"{k!r}"))), None)
    if isinstance(value, list):
        return next((r for v in value if (r := _unusable_text(v, where))), None)
    if isinstance(value, str):
        if "\0" in value and where != "'patch'":  # a NUL may be file content, never a name
            return f"{where} contains a NUL byte"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"{where} is not valid Unicode: lone surrogate at character {exc.start}"
    return None


def describe_test_run(run: TestRun, limit: int) -> str:
    if run.timed_out:
        head = f"TIMEOUT: the tests did not finish in {run.seconds:.0f}s"
    elif run.passed:
        head = "PASSED: all selected tests pass"
    else:
        head = "FAILED"
    if run.failing:
        head += f" ({len(run.failing)} failing)\nfailing tests:\n" + "\n".join(
            f"  {n}" for n in run.failing[:30]
        )
    return f"{head}\n\n{truncate(run.output.strip(), limit)}"
