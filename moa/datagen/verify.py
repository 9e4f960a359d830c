"""Independent checks of a mutation tool's verdicts, with the language's own test command.

Why: a tool says "killed" when its harness saw a failure, which may be a flaky test, a crash of the
harness or an interaction between mutants. A pair only becomes training data if applying its diff
to the clean tree makes the suite fail on tests that are not flaky, and reverting it makes the suite
pass again. Flaky tests are found up front by running the unmodified suite several times.

Runners that can name failing tests (`failing_tests(output) -> list[str]`) and skip some
(`exclude_tests=` on baseline/run) get per-test handling: flaky tests and tests red at baseline are
left out; with a runner that cannot, any red in the baseline makes the source unusable, and that
is what is reported. `passed_tests(output) -> int | None` lets the floor of green tests be checked.
"""

from __future__ import annotations

import inspect
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moa.api.records import SUITE_FAILURE, FailingTest, MutationRecord
from moa.languages.base import MutationRunner
from moa.languages.tools import TIMED_OUT

EXCERPT_CHARS = 2000


@dataclass
class Baseline:
    green: bool
    flaky: list[str] = field(default_factory=list)
    reason: str = ""
    runs: int = 0
    seconds: float = 0.0
    red: list[str] = field(default_factory=list)  # red in every baseline run: deselected
    green_tests: int | None = None  # passing tests left, where the runner's report counts them
    kind: str = ""  # why not green, in one word (a metric name): red, flaky, too_few_green

    @property
    def excluded(self) -> list[str]:
        """The tests every later run leaves out."""
        return sorted({*self.flaky, *self.red})


@dataclass
class Verdict:
    kept: bool
    # "verified" or why it was dropped: patch_failed, tests_pass, timeout, only_flaky, revert_not_green
    reason: str
    failing: list[str] = field(default_factory=list)
    excerpt: str = ""
    seconds: float = 0.0


def failing_tests(runner: MutationRunner, output: str) -> list[str] | None:
    """Failing test ids, or None when the runner cannot tell."""
    parse = getattr(runner, "failing_tests", None)
    return list(parse(output)) if parse else None


def _baseline(
    runner: MutationRunner, repo: Path, timeout_s: float, exclude: Sequence[str], only: Sequence[str] = ()
) -> tuple[bool, str]:
    # Keywords are passed only when used: runners without flaky support never see exclude_tests
    # (they never get here with flaky tests, see find_flaky), and only_tests is asked of runners
    # that declare it.
    kwargs: dict[str, list[str]] = {"exclude_tests": list(exclude)} if exclude else {}
    if only and "only_tests" in inspect.signature(runner.baseline).parameters:
        kwargs["only_tests"] = list(only)
    return runner.baseline(repo, timeout_s, **kwargs)  # type: ignore[call-arg]


def find_flaky(
    runner: MutationRunner, repo: Path, timeout_s: float, runs: int = 2, min_green: int = 1
) -> Baseline:
    """Run the unmodified suite `runs` times. Tests red in every run are deselected (a package's
    sdist may lack the data files some tests read), tests red in some runs only are flaky and
    excluded too; the source is usable when the rest is green and, where the runner counts them,
    at least `min_green` tests pass."""
    start = time.monotonic()
    results = [runner.baseline(repo, timeout_s) for _ in range(runs)]
    if all(ok for ok, _ in results):
        return Baseline(
            True, runs=runs, seconds=time.monotonic() - start, green_tests=_passed(runner, results[0][1])
        )
    red_out = next(out for ok, out in results if not ok)
    if not hasattr(runner, "failing_tests"):
        reason = f"baseline red or flaky (the runner cannot name tests): {red_out[-600:]}"
        return Baseline(False, reason=reason, runs=runs, kind="red")
    failed = [set(failing_tests(runner, out) or ()) if not ok else set() for ok, out in results]
    if not any(failed):
        reason = f"baseline red with no test named (the suite does not build or load): {red_out[-600:]}"
        return Baseline(False, reason=reason, runs=runs, seconds=time.monotonic() - start, kind="red")
    red = sorted(set.intersection(*failed))
    flaky = sorted(set.union(*failed) - set(red))
    ok, out = _baseline(runner, repo, timeout_s, [*red, *flaky])  # confirm: green without them
    took = time.monotonic() - start
    base = Baseline(ok, flaky, runs=runs + 1, seconds=took, red=red, green_tests=_passed(runner, out))
    if not ok:
        base.reason, base.kind = f"still red after excluding {(red + flaky)[:5]}: {out[-600:]}", "red"
    elif base.green_tests is not None and base.green_tests < min_green:
        base.green, base.kind = False, "too_few_green"
        base.reason = (
            f"only {base.green_tests} tests green after deselecting {len(red)} red (minimum {min_green})"
        )
    return base


def _passed(runner: MutationRunner, output: str) -> int | None:
    """Passing tests in a baseline output, where the runner's report says (`passed_tests`)."""
    count = getattr(runner, "passed_tests", None)
    return count(output) if count else None


def apply_diff(repo: Path, diff: str, *, reverse: bool = False, check: bool = False) -> tuple[bool, str]:
    """`git apply` (also outside a git repository); refuses paths escaping the tree. With
    `check`, only whether it would apply (nothing changes)."""
    cmd = [
        "git",
        "apply",
        "--whitespace=nowarn",
        *(["-R"] if reverse else []),
        *(["--check"] if check else []),
        "-",
    ]
    proc = subprocess.run(cmd, cwd=repo, input=diff, capture_output=True, text=True)
    return proc.returncode == 0, proc.stderr.strip()


def recover(repo: Path, journal: Path) -> None:
    """Revert a diff a killed run left applied (recorded in `journal` before applying). A kill
    between writing the journal and applying the diff, or between reverting it and removing the
    journal, leaves a journal whose diff is not applied: the tree is clean and the journal goes."""
    if journal.is_file():
        diff = journal.read_text()
        reverted, err = apply_diff(repo, diff, reverse=True)
        if not reverted and not apply_diff(repo, diff, check=True)[0]:
            raise RuntimeError(
                f"{repo}: cannot revert the diff a killed run left applied ({err}); delete {repo.parent}"
            )
        journal.unlink()


def verify(
    runner: MutationRunner,
    repo: Path,
    record: MutationRecord,
    flaky: Sequence[str],
    timeout_s: float,
    journal: Path | None = None,
) -> Verdict:
    """Apply the record's diff to the clean `repo`, test, revert, test; the tree is clean afterwards.
    With a `journal`, the applied diff is recorded there until reverted, for `recover` after a kill."""
    start = time.monotonic()
    target = repo / record.file
    pristine = target.read_bytes() if target.is_file() else None
    if journal:
        journal.write_text(record.diff)
    applied, err = apply_diff(repo, record.diff)
    if not applied:
        if journal:
            journal.unlink()
        return Verdict(False, "patch_failed", excerpt=err[-EXCERPT_CHARS:], seconds=time.monotonic() - start)
    try:
        green, out = _baseline(runner, repo, timeout_s, flaky)
    finally:
        reverted, err = apply_diff(repo, record.diff, reverse=True)
        if not reverted:
            raise RuntimeError(
                f"{repo}: could not revert the mutation in {record.file} ({err}); the tree is dirty"
            )
        if journal:
            journal.unlink()
    if pristine is not None and target.read_bytes() != pristine:
        raise RuntimeError(f"{repo}: reverting the mutation did not restore {record.file} byte for byte")
    if green:
        return Verdict(False, "tests_pass", seconds=time.monotonic() - start)
    if out.startswith(TIMED_OUT):  # a hang is not a bug a test names: never training data
        return Verdict(False, "timeout", excerpt=out[-EXCERPT_CHARS:], seconds=time.monotonic() - start)
    failing = failing_tests(runner, out)
    real = [t for t in failing or () if t not in set(flaky)]
    if failing is not None and failing and not real:
        return Verdict(False, "only_flaky", failing, out[-EXCERPT_CHARS:], time.monotonic() - start)
    # After the revert the tree is byte-identical to the baseline's (checked above), which was green
    # twice: the tests that failed must pass again (the whole suite when the runner cannot select).
    green_again, again = _baseline(runner, repo, timeout_s, flaky, only=real)
    if not green_again:
        return Verdict(False, "revert_not_green", real, again[-EXCERPT_CHARS:], time.monotonic() - start)
    return Verdict(True, "verified", real, out[-EXCERPT_CHARS:], time.monotonic() - start)


def apply_verdict(record: MutationRecord, verdict: Verdict) -> MutationRecord:
    """The record with verification's evidence: the tests that failed, an output excerpt, the time.

    The tests verification saw fail are named; when its output names none, the ones the tool's own
    report named stay (with their excerpts). Only when neither names a test is it SUITE_FAILURE."""
    own = {t.name: t.excerpt for t in record.failing_tests if t.name != SUITE_FAILURE}
    names = verdict.failing or list(own)
    tests = [
        FailingTest(name=n, excerpt=own.get(n) or (verdict.excerpt if i == 0 else ""))
        for i, n in enumerate(names)
    ]
    if not tests:
        tests = [FailingTest(name=SUITE_FAILURE, excerpt=verdict.excerpt)]
    timings = {**record.timings, "verify_s": round(verdict.seconds, 3)}
    return record.model_copy(update={"verified": True, "failing_tests": tests, "timings": timings})
