"""The oracle teacher: scripts a good engineer's actions from the known fix.

It never scripts an observation: every action runs through the `Executor`. It varies what a
good engineer varies -- whether to list or search first, how much of the file to read,
whether to open the failing test, and on some fraction a first fix that is wrong (a real
edit, a real red test run) before the right one -- and writes its analysis from the actual
failing test names and output, so no two demonstrations share a template.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from moa import harmony as h
from moa.agent.executor import Executor
from moa.agent.tasks import Bug
from moa.agent.workspace import FileDiff, apply_hunks, parse_unified_diff
from moa.api.records import MutationRecord
from moa.datagen.teachers import Demonstration, act
from moa.harmony.patch import make_patch
from moa.languages import registry


@dataclass(frozen=True)
class _Fix:
    """What the known fix is, in the agent's terms (buggy workspace -> fixed source)."""

    path: str
    buggy_line: int  # 1-based line of the first changed line in the buggy file
    buggy: tuple[str, ...]  # lines as they are now
    fixed: tuple[str, ...]  # lines as they should be


def _fix_of(executor: Executor, record: MutationRecord) -> tuple[_Fix, str]:
    """The fix, located in the workspace's buggy file, and that file's fixed contents."""
    fd = parse_unified_diff(record.diff)[0]
    reverse = FileDiff(
        fd.new_path, fd.old_path, tuple((start, tuple(_flip(s) for s in body)) for start, body in fd.hunks)
    )
    buggy_text = executor.workspace.path(fd.path).read_text()
    clean = apply_hunks(buggy_text, reverse)
    a, b = buggy_text.splitlines(), clean.splitlines()
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    # fixed -> buggy: '-' lines are the fix, '+' lines the bug.
    body = [s for _, hunk in fd.hunks[:1] for s in hunk]
    fix = _Fix(
        fd.path,
        first + 1,
        tuple(s[1:] for s in body if s[0] == "+"),
        tuple(s[1:] for s in body if s[0] == "-"),
    )
    return fix, clean


def _flip(line: str) -> str:
    return {"+": "-", "-": "+"}.get(line[0], " ") + line[1:]


_WRONG_EDITS = (
    (r"<=", "<"),
    (r">=", ">"),
    (r"(?<![<>=!])<(?![<=])", "<="),
    (r"(?<![<>=!-])>(?![>=])", ">="),
    (r"==", "!="),
    (r"!=", "=="),
    (r"\+ 1\b", "- 1"),
    (r"- 1\b", "+ 1"),
    (r"\b0\b", "1"),
    (r"\b1\b", "2"),
    (r"\bTrue\b", "False"),
    (r"\bFalse\b", "True"),
    (r"\btrue\b", "false"),
    (r"\bfalse\b", "true"),
    (r"\band\b", "or"),
    (r"\bor\b", "and"),
    (r"&&", "||"),
    (r"\|\|", "&&"),
    (r"\bnot ", ""),
)


def _wrong_variant(line: str, fixed: Sequence[str], rng: random.Random) -> str | None:
    """A plausible but different edit of the buggy line (a real engineer's first guess)."""
    options = []
    for pattern, repl in _WRONG_EDITS:
        for m in re.finditer(pattern, line):
            candidate = line[: m.start()] + repl + line[m.end() :]
            if candidate != line and candidate not in fixed:
                options.append(candidate)
    return rng.choice(options) if options else None


# Starts of test-output lines that say why a test failed, in any language; each plugin adds
# its runners' own (`failure_clues`).
CLUES = ("assert", "Error", "expected", "got", "Expected", "Received", r"\w+Error:")


def _interesting_output(output: str, path: str, clues: Sequence[str] = (), limit: int = 3) -> list[str]:
    """Lines of test output that say what went wrong: assertion and error lines, and the
    lines pointing into the mutated file."""
    name = PurePosixPath(path).name
    clue = re.compile("^(" + "|".join((*clues, *CLUES)) + ")")
    picked = []
    for line in output.splitlines():
        s = line.strip()
        if not s or len(s) > 200:
            continue
        telling = clue.match(s) or (name in s and re.search(r":\d+", s))
        if telling and s not in picked:
            picked.append(s)
        if len(picked) == limit:
            break
    return picked


def _say(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


class OracleTeacher:
    """Scripted actions from the known fix; every observation comes from the executor."""

    name = "oracle"

    def __init__(self, wrong_first_fraction: float = 0.2) -> None:
        self.wrong_first_fraction = wrong_first_fraction

    def demonstrate(
        self, task: Bug, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Demonstration:
        ep = Demonstration()
        fix, clean = _fix_of(executor, task.record)
        path, fn = fix.path, task.record.function
        say = ep.messages.append

        # 1. Reproduce.
        say(
            h.analysis(
                _say(
                    rng,
                    "Let me start by running the test suite to see what fails.",
                    "First I want to reproduce the failure, so I'll run the tests.",
                    "I'll run the tests to see the actual failure before reading any code.",
                    "Reproduce first: run the tests and look at the failing output.",
                )
            )
        )
        observed = act(ep, executor, "run_tests", {})
        first = executor.last_tests
        if first is None:
            # The oracle's call is valid, so a test run that could not even start (a tool that
            # cannot be installed, a read-only disk) is the environment's fault, not the task's:
            # the episode is retried, not dropped as if its tests were green.
            raise RuntimeError(f"run_tests could not run: {observed}")
        if first.passed:
            ep.reason = "the tests already pass on the buggy state (nothing to fix)"
            return ep
        failing = list(first.failing)
        clues = _interesting_output(first.output, path, registry.get(task.record.language).failure_clues)
        notes = []
        if failing:
            shown = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more" if len(failing) > 3 else "")
            notes.append(
                _say(
                    rng,
                    f"{len(failing)} test(s) fail: {shown}.",
                    f"The failing tests are {shown}.",
                    f"Failures: {shown}.",
                )
            )
        else:
            notes.append("The run fails, but the runner does not name the failing tests.")
        if clues:
            notes.append(
                _say(
                    rng, "The output says:", "Relevant lines from the output:", "The key part of the output:"
                )
                + " "
                + " | ".join(clues)
            )
        # 2. Locate.
        if fn and rng.random() < 0.6:
            notes.append(
                _say(
                    rng,
                    f"Let me find where `{fn}` is defined.",
                    f"I'll search for `{fn}` to locate the code under test.",
                    f"Searching for the definition of `{fn}`.",
                )
            )
            say(h.analysis(" ".join(notes)))
            act(
                ep,
                executor,
                "search",
                {"pattern": registry.get(task.record.language).definition(fn), "path": "."},
            )
        elif rng.random() < 0.5:
            folder = str(PurePosixPath(path).parent)
            notes.append(
                _say(
                    rng,
                    "Let me look at the layout of the project.",
                    "I'll list the files to orient myself.",
                    f"Let me see what is in {folder or 'the root'}.",
                )
            )
            say(h.analysis(" ".join(notes)))
            act(ep, executor, "list_files", {"path": folder or ".", "max_depth": rng.choice([1, 2, 3])})
        else:
            notes.append(
                _say(
                    rng,
                    f"The traceback points at {path}.",
                    f"This looks like it comes from {path}.",
                    f"{path} is the module these tests exercise.",
                )
            )
            say(h.analysis(" ".join(notes)))
        test_file = _test_file(failing)
        if test_file and rng.random() < 0.4 and executor.workspace.root.joinpath(test_file).is_file():
            say(
                h.analysis(
                    _say(
                        rng,
                        f"Let me read the failing test in {test_file} to see what it expects.",
                        f"First, what does {test_file} check?",
                    )
                )
            )
            act(ep, executor, "read_file", {"path": test_file})
        # 3. Read the code.
        before, after = rng.randint(5, 30), rng.randint(10, 40)
        start = max(1, fix.buggy_line - before)
        say(
            h.analysis(
                _say(
                    rng,
                    f"Reading {path} around line {fix.buggy_line}.",
                    f"Let me open {path}.",
                    f"I'll read the relevant part of {path}.",
                )
            )
        )
        act(
            ep, executor, "read_file", {"path": path, "start_line": start, "end_line": fix.buggy_line + after}
        )
        buggy = " / ".join(s.strip() for s in fix.buggy) or "(a removed line)"
        fixed = " / ".join(s.strip() for s in fix.fixed) or "(nothing)"
        where = f" in `{fn}`" if fn else ""
        # 4. Optionally a wrong first attempt, then 5. the fix.
        buggy_path = executor.workspace.path(path)
        lead = ""
        if fix.buggy and rng.random() < self.wrong_first_fraction:
            lead = self._wrong_attempt(ep, executor, fix, where, failing, rng)
        say(
            h.analysis(
                lead
                + _say(
                    rng,
                    f"The bug is{where} at line {fix.buggy_line}: `{buggy}` should be `{fixed}`.",
                    f"Found it: {path} has `{buggy}`{where}, which is wrong; the correct code is `{fixed}`.",
                    f"`{buggy}`{where} is the mistake. Replacing it with `{fixed}`, which is what the tests expect.",
                )
            )
        )
        act(ep, executor, "apply_patch", {"patch": make_patch({path: (buggy_path.read_text(), clean)})})
        # 6. Verify.
        say(
            h.analysis(
                _say(
                    rng,
                    "Now run the tests again.",
                    "Re-running the tests to confirm.",
                    "Let me verify with the full suite.",
                )
            )
        )
        act(ep, executor, "run_tests", {})
        ep.passed = executor.last_tests is not None and executor.last_tests.passed
        if not ep.passed:
            ep.reason = "the tests are still red after the known fix"
            return ep
        names = ", ".join(failing[:3]) if failing else "the failing tests"
        say(
            h.final(
                _say(
                    rng,
                    f"Fixed the bug{where} in `{path}`: `{buggy}` is now `{fixed}`. {names} pass again and the whole suite is green.",
                    f"The problem was in `{path}`{where}: it had `{buggy}` instead of `{fixed}`. I changed that line; all tests pass now.",
                    f"`{path}`{where} used `{buggy}`; the correct code is `{fixed}`. After the change the test suite passes ({names} included).",
                )
            )
        )
        return ep

    def _wrong_attempt(
        self,
        ep: Demonstration,
        executor: Executor,
        fix: _Fix,
        where: str,
        failing: list[str],
        rng: random.Random,
    ) -> str:
        """A plausible first guess, applied and tested for real; returns the words that lead
        into the right fix ("" when no guess fits the line)."""
        path = executor.workspace.path(fix.path)
        current = path.read_text()
        lines = current.split("\n")
        idx = fix.buggy_line - 1
        wrong = _wrong_variant(fix.buggy[0], fix.fixed, rng)
        if wrong is None or not 0 <= idx < len(lines) or lines[idx] != fix.buggy[0]:
            return ""
        ep.messages.append(
            h.analysis(
                _say(
                    rng,
                    f"Line {fix.buggy_line}{where} reads `{fix.buggy[0].strip()}`. My first guess is that it should be `{wrong.strip()}`.",
                    f"I suspect `{fix.buggy[0].strip()}`{where}; trying `{wrong.strip()}` instead.",
                )
            )
        )
        lines[idx] = wrong
        act(ep, executor, "apply_patch", {"patch": make_patch({fix.path: (current, "\n".join(lines))})})
        selected = failing[:5] if failing and rng.random() < 0.5 else []
        act(ep, executor, "run_tests", {"tests": selected} if selected else {})
        if selected and executor.last_tests is not None and executor.last_tests.passed:
            ep.messages.append(h.analysis("Those tests pass now; running the whole suite to be sure."))
            act(ep, executor, "run_tests", {})
        if executor.last_tests is not None and executor.last_tests.passed:
            return (
                f"The tests pass with `{wrong.strip()}`, but that bends the code around the tests "
                f"rather than restoring what it means to do. "
            )
        return _say(
            rng,
            "Still failing, so that was not it. Looking at the line again: ",
            "That did not fix it; the tests are still red. Reconsidering: ",
            "No, the tests still fail, so my guess was wrong. ",
        )


def _test_file(failing: Sequence[str]) -> str | None:
    for name in failing:
        head = name.split("::")[0]
        if "/" in head or head.endswith(registry.extensions()):
            return head
    return None
