"""Evaluators: judge a repository state (build, tests, lint) and turn it into a reward.

One evaluator per language, shared by preference ranking, GRPO rewards, eval and
trajectories, so the agent meets the same judge in training and in evaluation. There is one
registration path: the language plugin's `evaluator` hook, for moa's own languages and a
third party's alike, so a new language needs no change here.

The judgement is a ladder, stopping at the first rung that fails:

    builds / syntax ok  --no-->  compile_error   (-0.3)
    tests pass          --no-->  tests_failed    ( 0.1)
    lint finds nothing  --no-->  lint_warnings   ( 0.7)
                                 clean           ( 1.0)

plus `invalid_tool_call` (-1.0) and `patch_failed` for edits that never reach the repo
(see `moa.languages.evaluation`). The reward values are not written here: they come from
`moa.api.training.Rewards` (the AdapterTraining spec's table, roadmap defaults), or from a
plain mapping keyed by outcome whose missing keys take those defaults.

When no linter can run (a tool failed to install), the state is judged on build and tests
alone and `lint_available=False` says so; it is not penalised for our missing tool.
"""

from __future__ import annotations

import re
import subprocess
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar

from moa.api.records import EvalOutcome
from moa.api.training import Rewards
from moa.languages import registry
from moa.languages.base import Evaluator
from moa.languages.sandbox import Limits, Result, Sandbox
from moa.languages.tools import cache_dir, excerpt

RewardTable = Rewards | Mapping[str, float] | None


# How much of a step's output an outcome keeps: enough for a tool result, not a whole log.
OUTPUT_CHARS = 6000


def eval_root() -> Path:
    """Evaluation caches: outcomes, baselines, work slots, toolchain build caches."""
    return cache_dir() / "eval"


def get_evaluator(language: str, rewards: RewardTable = None) -> Evaluator:
    """The evaluator for `language`, from its plugin's `evaluator` hook."""
    plugin = registry.get(language)
    if plugin.evaluator is None:
        raise LookupError(f"language {language!r} has no evaluator (its plugin sets no 'evaluator' hook)")
    evaluator = plugin.evaluator()
    if rewards is not None and isinstance(evaluator, ToolchainEvaluator):
        evaluator.rewards = rewards
    return evaluator


def reward_table(rewards: RewardTable) -> Rewards:
    """The spec's table as given, a mapping validated into one (unknown outcomes are refused,
    missing ones take the roadmap defaults), or the defaults."""
    if isinstance(rewards, Rewards):
        return rewards
    return Rewards.model_validate(dict(rewards or {}))


def rescore(outcome: EvalOutcome, rewards: RewardTable) -> EvalOutcome:
    """The same outcome under another reward table (cached outcomes are stored once)."""
    return outcome.model_copy(update={"reward": reward_table(rewards).reward(outcome.outcome)})


def invalid_call(reason: str, rewards: RewardTable = None) -> EvalOutcome:
    """An agent action that never reached the repository: malformed apply_patch, bad JSON
    arguments, an unknown tool."""
    return EvalOutcome(
        applied=False,
        outcome="invalid_tool_call",
        reward=reward_table(rewards).reward("invalid_tool_call"),
        output=reason,
    )


def new_findings(findings: Sequence[str], baseline: Sequence[str]) -> list[str]:
    """Findings not already in `baseline`, counted as a multiset (a second copy of an old
    warning is new)."""
    return list((Counter(findings) - Counter(baseline)).elements())


@cache
def version_of(*cmd: str) -> str:
    """First line a tool prints for its version; 'absent' when it cannot run (part of the
    cache key, so an upgraded toolchain re-evaluates)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return f"{cmd[0]}: absent"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


@dataclass
class Lint:
    """What the linters found: normalised findings (see EvalOutcome.lint_findings)."""

    findings: list[str]
    output: str
    available: bool = True


@dataclass
class SuiteRun:
    result: Result
    total: int | None = None
    failed: int | None = None
    builds: bool = True  # False when the test build itself failed (test code does not compile)


_COUNT = re.compile(r"(\d+)\s+(passed|failed|errors?)\b")


def count_tests(output: str) -> tuple[int | None, int | None]:
    """(total, failed) from summary lines like pytest's / jest's '3 failed, 40 passed';
    None when the runner printed no such line."""
    passed = failed = 0
    seen = False
    for n, word in _COUNT.findall(output):
        seen = True
        if word == "passed":
            passed += int(n)
        else:
            failed += int(n)
    return (passed + failed, failed) if seen else (None, None)


class ToolchainEvaluator(ABC):
    """The build -> tests -> lint ladder, run in the sandbox; a language supplies the steps.

    Every step gets what is left of one overall `timeout_s`. A test run that times out is a
    failing fix (an infinite loop is a bug); a build that times out is a compile failure.
    """

    language: ClassVar[str]

    def __init__(self, rewards: RewardTable = None) -> None:
        self.rewards = rewards

    @abstractmethod
    def toolchain(self) -> str:
        """Versions of every tool the verdict depends on (part of the cache key)."""

    @abstractmethod
    def sandbox(self, repo: Path) -> Sandbox:
        """The sandbox policy: the cache folders this toolchain may write."""

    @abstractmethod
    def build(self, repo: Path, run: Runner) -> Result: ...

    @abstractmethod
    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        """The suite, or only `tests` (names as the runner prints them: the agent's run_tests)."""

    @abstractmethod
    def lint(self, repo: Path, run: Runner) -> Lint: ...

    def install_tools(self) -> list[str]:
        """Install now what the steps run besides the toolchain (as their first use would), and
        name it; image builds call this so that pods, which have no network, find it baked in."""
        return []

    def evaluate(self, repo: Path, timeout_s: float = 600.0) -> EvalOutcome:
        repo = Path(repo).resolve()
        run = Runner(self.sandbox(repo), repo, time.monotonic() + timeout_s)
        table = reward_table(self.rewards)

        def done(outcome: str, output: str, **fields: object) -> EvalOutcome:
            return EvalOutcome.model_validate(
                {
                    "outcome": outcome,
                    "reward": table.reward(outcome),
                    "output": excerpt(output, OUTPUT_CHARS),
                    "seconds": round(time.monotonic() - run.start, 3),
                    **fields,
                }
            )

        built = self.build(repo, run)
        if not built.ok:
            return done("compile_error", _verdict("build", built), timed_out=built.timed_out)
        tests = self.test(repo, run)
        counts = {
            "tests_total": tests.total,
            "tests_failed": tests.failed,
            "timed_out": tests.result.timed_out,
        }
        if not tests.builds:
            return done("compile_error", _verdict("test build", tests.result), **counts)
        if not tests.result.ok:
            return done("tests_failed", _verdict("tests", tests.result), builds=True, **counts)
        lint = self.lint(repo, run)
        common = {"builds": True, "tests_passed": True, "lint_available": lint.available, **counts}
        if lint.findings:
            return done("lint_warnings", lint.output, lint_findings=lint.findings, **common)
        return done(
            "clean",
            lint.output if not lint.available else "tests pass, lint clean",
            lint_clean=True,
            **common,
        )

    def lint_state(self, repo: Path, timeout_s: float = 600.0) -> list[str]:
        """Lint findings of a state on their own (the baseline a patch is judged against)."""
        repo = Path(repo).resolve()
        return self.lint(repo, Runner(self.sandbox(repo), repo, time.monotonic() + timeout_s)).findings


def rejudge_lint(outcome: EvalOutcome, baseline: Sequence[str], rewards: RewardTable) -> EvalOutcome:
    """Count only findings the edit introduced: a correct fix in a file that already had
    warnings is clean. `baseline` holds the findings of the state before the edit."""
    if outcome.outcome != "lint_warnings":
        return outcome
    fresh = new_findings(outcome.lint_findings, baseline)
    if fresh:
        shown = "\n".join(fresh)
        return outcome.model_copy(
            update={"lint_findings": fresh, "output": excerpt(f"new lint findings:\n{shown}", OUTPUT_CHARS)}
        )
    return outcome.model_copy(
        update={
            "outcome": "clean",
            "lint_clean": True,
            "lint_findings": [],
            "reward": reward_table(rewards).reward("clean"),
            "output": "tests pass, lint adds nothing to the findings the repository already had",
        }
    )


class Runner:
    """Runs one evaluation's commands in its sandbox, each within what is left of the budget."""

    def __init__(self, sandbox: Sandbox, repo: Path, deadline: float) -> None:
        self.sandbox, self.repo, self.deadline = sandbox, repo, deadline
        self.start = time.monotonic()

    def __call__(
        self, cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> Result:
        left = self.deadline - time.monotonic()
        if left <= 0:
            return Result(
                returncode=124,
                output=f"$ {' '.join(cmd)}\nnot run: the evaluation budget is spent",
                seconds=0.0,
                timed_out=True,
            )
        limits = Limits(
            timeout_s=left, memory_mb=self.sandbox.limits.memory_mb, cpu_s=self.sandbox.limits.cpu_s
        )
        result = self.sandbox.run(cmd, cwd or self.repo, env=env, limits=limits)
        shown = " ".join("<script>" if "\n" in arg else arg for arg in cmd)
        result.output = f"$ {shown}\n{result.output}"
        return result


def _verdict(step: str, result: Result) -> str:
    if result.timed_out:
        return f"{step} timed out after {result.seconds:.0f}s\n{result.output}"
    return result.output


_LOCATED = re.compile(r"^(?:\./)?(?P<path>[^\s:][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?P<message>.+)$")


def located_findings(output: str, repo: Path, tool: str) -> tuple[list[str], list[str]]:
    """(findings, shown lines) from `path:line[:col]: message` lines (go vet, golangci-lint);
    paths are made relative to `repo`, line numbers dropped."""
    findings, shown = [], []
    for line in output.splitlines():
        m = _LOCATED.match(line.strip())
        if not m:
            continue
        path = Path(m["path"])
        if path.is_absolute():
            if not path.is_relative_to(repo):
                continue
            path = path.relative_to(repo)
        findings.append(f"{path.as_posix()}: {tool}: {m['message']}")
        shown.append(f"{path.as_posix()}:{m['line']}: {m['message']}")
    return findings, shown


class BuildNameChecker(ToolchainEvaluator):
    """A toolchain evaluator with the optional `NameChecker` interface for a compiled
    language: undefined names as the compiler reports them in the build step (its own name
    resolution, run in the sandbox). `UNDEFINED` matches one such diagnostic line: groups
    `path` and `message`."""

    UNDEFINED: ClassVar[re.Pattern[str]]

    def name_check(self, repo: Path, run: Runner) -> Result:
        """The compiler run whose diagnostics are read: the build step."""
        return self.build(repo, run)

    def undefined_names(
        self, repo: Path, files: Sequence[str], timeout_s: float = 600.0
    ) -> set[tuple[str, str]]:
        repo = Path(repo).resolve()
        built = self.name_check(repo, Runner(self.sandbox(repo), repo, time.monotonic() + timeout_s))
        wanted = set(files)
        found = set()
        for m in self.UNDEFINED.finditer(built.output):
            path = Path(m["path"])
            rel = (
                path.relative_to(repo) if path.is_absolute() and path.is_relative_to(repo) else path
            ).as_posix()
            rel = rel.removeprefix("./")
            if rel in wanted:
                found.add((rel, m["message"].strip()))
        return found
