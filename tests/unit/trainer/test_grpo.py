"""`moa train grpo`: rewards from executing completions, the curriculum, the gates."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from repair_tasks import (
    LORA,
    bad_patch,
    fix_patch,
    mutation_records,
    repair_config,
    save_fresh_adapter,
    task_rows,
    write_rows,
)

from moa import harmony as h
from moa.agent.judge import Judge
from moa.agent.policy import Policy
from moa.agent.rollout import Episode, run_episodes
from moa.agent.tasks import read_tasks
from moa.api.training import GrpoStage, LoraSpec, Rewards
from moa.cli import cli
from moa.languages.evaluation import evaluate_patch
from moa.trainer import grpo, history
from moa.trainer.grpo import ExecutionReward, grpo_summary

pytestmark = pytest.mark.slow


def test_the_prompt_is_the_users_report_not_the_bugs_location(tmp_path: Path) -> None:
    """A GRPO task's prompt: the failing tests, their output and the repository's layout, and
    nothing past the user's report (no tool round that opens the buggy file)."""
    rows = task_rows()
    tasks = read_tasks(write_rows(tmp_path / "tasks", rows, "tasks.jsonl"), "python")
    for task, row, record in zip(tasks, rows, mutation_records(), strict=True):
        assert [m.role for m in task.prompt] == ["system", "developer", "user"]
        report = task.prompt[-1].content
        assert record.failing_tests and all(t.name in row["failing_tests"] for t in record.failing_tests)
        assert record.failing_tests[0].name in report  # named by the user
        output = record.failing_tests[0].excerpt.strip().splitlines()
        assert "\n".join(output[-3:]) in report  # and their output's tail pasted (the runner's summary)
        assert f"\n{record.file}\n" in report and "tests/" in report  # the layout
        prompt = task.prompt_text()
        assert "<|call|>" not in prompt and "<|start|>functions." not in prompt  # no tool round
        # Nothing read_file shows: numbered lines around the bug.
        assert f"{record.line:>5}\t" not in prompt and f"{record.line - 1:>5}\t" not in prompt


def test_rewards_are_the_outcomes_of_executing_each_episode(tmp_path: Path) -> None:
    tasks = read_tasks(write_rows(tmp_path / "tasks", task_rows(), "tasks.jsonl"), "python")
    record = mutation_records()[0]
    task = tasks[0]
    # What an episode leaves for the judge: its changes as one patch, or why it broke the protocol.
    episodes = {
        "fix": Episode(ended="final", patch=fix_patch(record)),
        "broken": Episode(ended="final", patch=bad_patch(record)),
        "fix, then garbage": Episode(ended="invalid", problem="not valid Harmony", patch=fix_patch(record)),
        "garbage": Episode(ended="invalid", problem="not valid Harmony: <|start|> inside a message's text"),
        "read only": Episode(ended="turn_limit"),
    }
    rewards = Rewards()
    with Judge(rewards, timeout_s=120) as judge:
        reward = ExecutionReward({t.id: t for t in tasks}, judge)
        got = reward.score(list(episodes.values()), [task.id] * len(episodes))
        state = judge.state(task)
        for (name, ep), value, outcome in zip(episodes.items(), got, reward.outcomes, strict=True):
            if ep.patch is not None:
                expected = evaluate_patch("python", state, ep.patch, rewards=rewards, timeout_s=120)
                assert (value, outcome) == (expected.reward, expected.outcome), name
    assert reward.outcomes[0] in ("clean", "lint_warnings") and got[0] >= 0.7
    assert reward.outcomes[1] == "compile_error" and got[1] == rewards.compile_error
    assert reward.outcomes[2] == reward.outcomes[0]  # what it changed counts, not how it ended
    assert reward.outcomes[3] == "invalid_tool_call" and got[3] == rewards.invalid_tool_call
    # Reading edits nothing: the buggy state, executed as it is, fails its tests.
    assert reward.outcomes[4] == "tests_failed" and got[4] == rewards.tests_failed

    # The gates read the logged rewards: the same summary passes or fails by the spec's thresholds.
    # (The window is the last 10 % of logged steps: 20 steps replaying these rewards.)
    log = [{"step": s + 1, "reward": got[s % len(got)]} for s in range(20)]
    loose = GrpoStage.model_validate(
        {"gates": {"window": 2, "minMeanReward": -1.0, "minRewardStd": 0.1, "minMaxReward": 0.7}}
    )
    strict = GrpoStage.model_validate({"gates": {"window": 2, "minMeanReward": 0.5}})
    assert grpo_summary(log, loose, {}).status == "succeeded"
    failed = grpo_summary(log, strict, {})
    assert failed.status == "gate_failed" and [g.name for g in failed.gates if not g.passed] == [
        "grpo.reward_mean_last"
    ]


class Killed(Exception):
    pass


def crashing_after_step_1(make: Any) -> Any:
    def wrapped(*args: Any) -> Any:
        callback = make(*args)
        original = callback.on_step_begin

        def on_step_begin(args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 1:
                raise Killed("killed after step 1")
            return original(args, state, control, **kwargs)

        callback.on_step_begin = on_step_begin
        return callback

    return wrapped


@dataclass
class ScriptedFirstTurn(Policy):
    """The real tiny model, except that its first turn is the given tokens (a random model
    rarely writes a valid call): every later turn is sampled from the model."""

    first: tuple[int, ...] = ()
    prompt_tokens: int = 0

    def sample(self, contexts: Sequence[Sequence[int]], max_new_tokens: int | None = None) -> list[list[int]]:
        later = [c for c in contexts if len(c) > self.prompt_tokens]
        sampled = iter(super().sample(later, max_new_tokens) if later else [])
        return [list(self.first) if len(c) == self.prompt_tokens else next(sampled) for c in contexts]


def test_a_rollout_runs_the_calls_and_masks_the_observations(tiny_model: Path, tmp_path: Path) -> None:
    """Token-level episodes (what GRPO trains on): the call runs in the task's workspace, its
    observation and the next turn's header are appended with mask 0, and the model's next turn,
    sampled after exactly those tokens, with mask 1."""
    from moa.agent.policy import decode, load_base

    tasks = read_tasks(write_rows(tmp_path / "tasks", task_rows(), "tasks.jsonl"), "python")
    task, record = tasks[1], mutation_records()[1]
    model, tokenizer, _ = load_base(tiny_model, LoraSpec.model_validate(LORA))
    encode = functools.partial(lambda t, text: t(text, add_special_tokens=False)["input_ids"], tokenizer)
    call = h.render_message(h.tool_call("read_file", {"path": record.file, "end_line": 3}))
    first = encode(call[len("<|start|>assistant") :])
    prompt = encode(task.prompt_text())
    policy = ScriptedFirstTurn(
        model, tokenizer, 1.0, 24, len(prompt) + 400, first=tuple(first), prompt_tokens=len(prompt)
    )
    episodes = run_episodes(policy, task, 2, max_turns=3, tokens=True)
    for ep in episodes:
        t = ep.tokens
        assert t is not None and t.prompt == prompt
        assert ep.tool_calls >= 1 and ep.turns >= 2  # the call ran, then the model wrote a turn
        result = ep.messages[1]
        assert result.role == "tool" and result.content.startswith("    1\t")  # the file's first lines
        observed = h.render_message(result) + "<|start|>assistant"
        n, m = len(first), len(encode(observed))
        assert t.ids[:n] == first and t.mask[:n] == [1] * n
        assert decode(tokenizer, t.ids[n : n + m]) == observed and t.mask[n : n + m] == [0] * m
        rest, rest_mask = t.ids[n + m :], t.mask[n + m :]
        k = rest_mask.index(0) if 0 in rest_mask else len(rest)  # the second turn: up to its observation
        assert k > 0 and rest_mask[:k] == [1] * k and decode(tokenizer, rest[:k]) == ep.completions[1]
        trimmed = t.trimmed()
        assert trimmed.mask[-1] == 1  # no observation left that no turn answered


def test_tiny_model_trains_with_curriculum_resumes_and_fails_its_gate(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level("INFO", logger="moa.trainer")
    write_rows(tmp_path / "data/python/grpo/tasks", task_rows(), "tasks.jsonl")
    adapters = tmp_path / "checkpoints/adapters"
    save_fresh_adapter(tiny_model, adapters / "python_core_agent", LORA)
    save_fresh_adapter(tiny_model, adapters / "python_ipo", LORA)  # training continues IPO's adapter
    config = repair_config(
        tmp_path,
        tiny_model,
        "grpo",
        grpo={
            "maxSteps": 2,
            "numGenerations": 2,
            "batchSize": 2,
            "gradientAccumulation": 1,
            "maxNewTokens": 12,
            "saveSteps": 1,
            "maxTurns": 3,
            # Prompts: idna's about 1420 tokens, toolz's about 1475 (tiny tokenizer).
            "curriculum": [{"step": 0, "maxLength": 1446}, {"step": 1, "maxLength": 2048}],
            "gates": {"window": 2, "minMeanReward": 0.3, "minRewardStd": 0.0, "minMaxReward": 0.7},
        },
    )
    # A crash after step 1 (its checkpoint written) stands in for a killed pod.
    with monkeypatch.context() as patch:
        patch.setattr(grpo, "curriculum_callback", crashing_after_step_1(grpo.curriculum_callback))
        crashed = CliRunner().invoke(cli, ["train", "grpo", "--config", str(config)])
    assert crashed.exit_code == 1 and "killed after step 1" in crashed.output, crashed.output
    partial = tmp_path / "checkpoints/adapters/python_grpo.partial/checkpoints"
    assert (partial / "checkpoint-1/trainer_state.json").exists()
    result = CliRunner().invoke(cli, ["train", "grpo", "--config", str(config)])
    assert result.exit_code == 3, result.output  # a random model earns -1 everywhere
    assert f"resuming from {partial / 'checkpoint-1'}" in caplog.text
    out = tmp_path / "checkpoints/adapters/python_grpo"
    summary = json.loads((out / "metrics.json").read_text())
    m = summary["metrics"]
    assert m["steps"] == 2 and m["share_invalid_tool_call"] == 1.0
    assert m["reward_max"] == -1.0 and summary["status"] == "gate_failed"
    assert m["curriculum_switches"] == 1 and m["final_max_length"] == 2048
    log = history.load(out / history.FILE)
    assert [e["curriculum_max_length"] for e in log if "reward" in e] == [1446, 2048]
    assert all(e["episodes/turns"] >= 1 for e in log if "reward" in e)  # each episode's turns, logged
    assert "curriculum: step 0: max length 1446, 1 of 2 tasks" in caplog.text
    assert "curriculum: step 1: max length 2048, 2 of 2 tasks" in caplog.text
    ref, start = adapters / "python_core_agent", adapters / "python_ipo"
    assert f"reference policy: {ref} (training continues {start})" in caplog.text
    assert (out / "plots/reward.png").stat().st_size > 0 and (out / "adapter_config.json").exists()
    assert not (tmp_path / "checkpoints/adapters/python_grpo.partial").exists()
    again = CliRunner().invoke(cli, ["train", "grpo", "--config", str(config)])  # a completed stage: no-op
    assert again.exit_code == 3 and json.loads((out / "metrics.json").read_text()) == summary


def test_a_curriculum_length_that_holds_no_prompt_is_refused() -> None:
    """An episode needs room for a turn: no task fitting is the spec's error, said as such."""
    stage = GrpoStage.model_validate({"curriculum": [{"step": 0, "maxLength": 256}]})
    with pytest.raises(click.ClickException, match=r"stages.grpo.curriculum: maxLength 256 \(from step 0\)"):
        grpo.Curriculum(stage, [300, 400]).at(0)
