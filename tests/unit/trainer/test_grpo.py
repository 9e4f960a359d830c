"""`moa train grpo`: rewards from executing completions, the curriculum, the gates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from repair_tasks import (
    LORA,
    bad_patch,
    fix_patch,
    mutation_records,
    patch_call,
    repair_config,
    save_fresh_adapter,
    task_rows,
    write_rows,
)

from moa import harmony as h
from moa.agent.judge import Judge
from moa.agent.tasks import read_tasks
from moa.api.training import GrpoStage, Rewards
from moa.cli import cli
from moa.languages.evaluation import evaluate_patch
from moa.trainer import grpo, history
from moa.trainer.grpo import ExecutionReward, grpo_summary

pytestmark = pytest.mark.slow


def test_rewards_are_the_outcomes_of_executing_each_completion(tmp_path: Path) -> None:
    tasks = read_tasks(write_rows(tmp_path / "tasks", task_rows(), "tasks.jsonl"), "python")
    record = mutation_records()[0]
    task = tasks[0]
    read = h.render_message(h.tool_call("read_file", {"path": record.file}))[len("<|start|>assistant") :]
    completions = {
        "fix": patch_call(fix_patch(record)),
        "broken": patch_call(bad_patch(record)),
        "not a patch": patch_call("*** Begin Patch\nnonsense"),
        "garbage": "<|channel|>commentary to=functions.apply_patch garbage",
        "read only": read,
    }
    rewards = Rewards()
    with Judge(rewards, timeout_s=120) as judge:
        reward = ExecutionReward(None, {t.id: t for t in tasks}, judge)
        got = reward.score(list(completions.values()), [task.id] * len(completions))
        state = judge.state(task)
        for (name, text), value, outcome in zip(completions.items(), got, reward.outcomes, strict=True):
            if name in ("fix", "broken", "not a patch"):
                patch = json.loads(h.parse_completion(text).messages[-1].content)["patch"]
                expected = evaluate_patch("python", state, patch, rewards=rewards, timeout_s=120)
                assert (value, outcome) == (expected.reward, expected.outcome), name
    assert reward.outcomes[0] in ("clean", "lint_warnings") and got[0] >= 0.7
    assert reward.outcomes[1] == "compile_error" and got[1] == rewards.compile_error
    assert reward.outcomes[2:4] == ["invalid_tool_call"] * 2 and got[3] == rewards.invalid_tool_call
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
            # Prompts: toolz's about 1190 tokens, idna's about 1390 (tiny tokenizer).
            "curriculum": [{"step": 0, "maxLength": 1300}, {"step": 1, "maxLength": 2048}],
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
    assert [e["curriculum_max_length"] for e in log if "reward" in e] == [1300, 2048]
    assert "curriculum: step 0: max length 1300, 1 of 2 tasks" in caplog.text
    assert "curriculum: step 1: max length 2048, 2 of 2 tasks" in caplog.text
    ref, start = adapters / "python_core_agent", adapters / "python_ipo"
    assert f"reference policy: {ref} (training continues {start})" in caplog.text
    assert (out / "plots/reward.png").stat().st_size > 0 and (out / "adapter_config.json").exists()
    assert not (tmp_path / "checkpoints/adapters/python_grpo.partial").exists()
    again = CliRunner().invoke(cli, ["train", "grpo", "--config", str(config)])  # a completed stage: no-op
    assert again.exit_code == 3 and json.loads((out / "metrics.json").read_text()) == summary
