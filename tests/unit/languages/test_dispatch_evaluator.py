"""Evaluator dispatch, reward tables, the outcome cache and parallel evaluation, on a small
third-party language (POSIX shell: `sh -n` is its compiler, a test script its suite), so
these run in seconds without a language toolchain."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from moa.api.records import EvalOutcome
from moa.harmony.patch import make_patch
from moa.languages import registry
from moa.languages.base import Evaluator, LanguagePlugin
from moa.languages.evaluation import evaluate_many, evaluate_patch, prune_work, tree_hash
from moa.languages.evaluators import (
    Lint,
    Runner,
    SuiteRun,
    ToolchainEvaluator,
    get_evaluator,
    new_findings,
    reward_table,
)
from moa.languages.python.evaluator import PythonEvaluator
from moa.languages.sandbox import Result, Sandbox

BUGGY = "add() { echo $(($1 - $2)); }\n"
FIXED = "add() { echo $(($1 + $2)); }\n"
TEST = '. ./lib.sh\n[ "$(add 2 3)" = 5 ] || { echo "add 2 3 != 5"; exit 1; }\necho "1 passed"\n'


class ShellEvaluator(ToolchainEvaluator):
    """Lint: a line longer than 40 characters is a finding."""

    language = "shell"

    def toolchain(self) -> str:
        return "sh"

    def sandbox(self, repo: Path) -> Sandbox:
        return Sandbox()

    def build(self, repo: Path, run: Runner) -> Result:
        return run(["sh", "-n", "lib.sh"])

    def test(self, repo: Path, run: Runner, tests: Sequence[str] = ()) -> SuiteRun:
        return SuiteRun(run(["sh", "test.sh"]))

    def lint(self, repo: Path, run: Runner) -> Lint:
        long = [
            f"lib.sh: width: {line}" for line in (repo / "lib.sh").read_text().splitlines() if len(line) > 40
        ]
        return Lint(long, "\n".join(long))


def _shell_evaluator() -> Evaluator:
    return ShellEvaluator()


@pytest.fixture
def eval_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A 'shell' plugin registered like a third-party one, and a buggy repository."""
    plugin = LanguagePlugin(name="shell", extensions=(".sh",), evaluator=_shell_evaluator)
    monkeypatch.setitem(registry.plugins(), "shell", plugin)
    monkeypatch.setenv("MOA_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "lib.sh").write_text(BUGGY)
    (repo / "test.sh").write_text(TEST)
    return repo


def fix(to: str) -> str:
    return make_patch({"lib.sh": (BUGGY, to)})


def test_dispatch_prefers_registered_then_plugin_hook(eval_shell: Path) -> None:
    assert isinstance(get_evaluator("python"), PythonEvaluator)
    assert isinstance(get_evaluator("shell"), ShellEvaluator)  # through the plugin hook
    with pytest.raises(registry.UnknownLanguageError):
        get_evaluator("cobol")


def test_reward_table_from_mapping() -> None:
    table = reward_table({"clean": 2.0})
    assert table.reward("clean") == 2.0 and table.reward("compile_error") == -0.3  # the rest: defaults
    with pytest.raises(ValidationError):
        reward_table({"brilliant": 5.0})


def test_ladder_cache_and_parallel(eval_shell: Path, tmp_path: Path) -> None:
    wide = "add() { echo $(($1 + $2)); }  # now with a long comment\n"
    patches = [
        fix(FIXED),
        fix("add() { echo $(($1 + $2); }\n"),
        fix("add() { echo $(($1 * $2)); }\n"),
        fix(wide),
    ]
    before = tree_hash(eval_shell)
    outcomes = evaluate_many("shell", [(eval_shell, p) for p in patches], workers=2)
    assert [o.outcome for o in outcomes] == ["clean", "compile_error", "tests_failed", "lint_warnings"]
    assert [o.reward for o in outcomes] == [1.0, -0.3, 0.1, 0.7]
    assert outcomes[3].lint_findings == ["lib.sh: width: " + wide.strip()]
    assert tree_hash(eval_shell) == before, "the repository state is never modified"

    again = evaluate_patch("shell", eval_shell, patches[0], rewards={"clean": 0.25})
    assert again.cached and (again.outcome, again.reward) == ("clean", 0.25)

    fresh = fix("add() { echo $(($1 / $2)); }\n")
    dupes = evaluate_many("shell", [(eval_shell, fresh)] * 3, workers=3)
    assert [o.outcome for o in dupes] == ["tests_failed"] * 3
    assert sum(o.cached for o in dupes) == 2, "identical candidates are evaluated once"


def test_invalid_calls_never_touch_the_repo(eval_shell: Path) -> None:
    malformed = evaluate_patch(
        "shell", eval_shell, "*** Begin Patch\n*** Frobnicate: lib.sh\n*** End Patch\n"
    )
    assert (malformed.outcome, malformed.reward, malformed.applied) == ("invalid_tool_call", -1.0, False)
    escape = evaluate_patch(
        "shell", eval_shell, "*** Begin Patch\n*** Add File: ../evil.sh\n+x\n*** End Patch\n"
    )
    assert (escape.outcome, escape.reward) == ("patch_failed", -1.0)
    assert not (eval_shell.parent / "evil.sh").exists()
    priced = evaluate_patch(
        "shell", eval_shell, make_patch({"lib.sh": ("nope\n", "x\n")}), rewards={"patch_failed": -0.5}
    )
    assert (priced.outcome, priced.reward) == ("patch_failed", -0.5)


def test_lint_is_judged_against_the_state_before_the_patch(eval_shell: Path) -> None:
    """A correct fix in a file that already had a finding is clean; a second copy is new."""
    old = "# a comment that was already too long for the rule\n"
    (eval_shell / "lib.sh").write_text(old + BUGGY)
    patch = make_patch({"lib.sh": (old + BUGGY, old + FIXED)})
    assert evaluate_patch("shell", eval_shell, patch).outcome == "clean"
    assert new_findings(["a", "a", "b"], ["a", "b"]) == ["a"]


def test_outcome_record_round_trips() -> None:
    outcome = EvalOutcome(outcome="clean", reward=1.0, lint_findings=["x: y: z"])
    assert EvalOutcome.model_validate_json(outcome.model_dump_json()) == outcome


def test_work_slots_of_vanished_states_are_pruned(eval_shell: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    shutil.copytree(eval_shell, gone)
    evaluate_patch("shell", gone, fix(FIXED))
    evaluate_patch("shell", eval_shell, fix(FIXED))
    shutil.rmtree(gone)
    removed = prune_work()
    assert [p.name.startswith("shell-gone-") for p in removed] == [True]
    assert prune_work() == []  # the live state's slots stay


def test_a_timeout_is_a_failing_fix_and_not_cached(eval_shell: Path) -> None:
    (eval_shell / "test.sh").write_text(". ./lib.sh\nsleep 30\n")
    first = evaluate_patch("shell", eval_shell, fix(FIXED), timeout_s=1.0)
    assert (first.outcome, first.timed_out, first.cached) == ("tests_failed", True, False)
    assert "timed out" in first.output
    again = evaluate_patch("shell", eval_shell, fix(FIXED), timeout_s=1.0)
    assert not again.cached
