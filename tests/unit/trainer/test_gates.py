"""Gate metrics from a logged history: the definitions in moa.trainer.gates, and the spec's
thresholds applied to them (the same code for a test spec and the roadmap defaults)."""

from __future__ import annotations

import math

import pytest

from moa.api.training import GrpoGates, IpoGates, SftGates
from moa.trainer import gates


def log(key: str, vals: list[float]) -> list[dict]:
    return [{"step": i + 1, key: v} for i, v in enumerate(vals)]


def test_final_loss_is_the_mean_of_the_last_tenth() -> None:
    history = log("loss", [5.0] * 18 + [0.4, 0.2])
    assert gates.final_loss(history) == pytest.approx(0.3)
    assert gates.final_loss(log("loss", [0.7])) == 0.7
    assert gates.final_loss([]) is None


def test_a_nan_loss_anywhere_is_a_collapse() -> None:
    assert gates.final_loss(log("loss", [1.0, math.nan, 0.5])) is None
    result = IpoGates().evaluate({"kl": 0.1, "chosen_over_rejected": 0.9})  # no final_loss: absent
    assert [g.name for g in result if not g.passed] == ["ipo.final_loss"]


def test_eval_loss_slope_over_the_last_fifth() -> None:
    # rising early, falling over the last 20 %: the trend that counts is the recent one
    history = log("eval_loss", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 3.0, 2.0])
    assert gates.eval_loss_slope(history, 0.2) == pytest.approx(-1.0)
    # too few points in the window: the last two are compared
    assert gates.eval_loss_slope(log("eval_loss", [3.0, 2.5]), 0.2) == pytest.approx(-0.5)
    # one point has no trend: absent, so the gate fails
    assert gates.eval_loss_slope(log("eval_loss", [3.0]), 0.2) is None


def test_least_squares_slope() -> None:
    assert gates.slope([(0, 1.0), (1, 3.0), (2, 5.0)]) == pytest.approx(2.0)
    assert gates.slope([(4, 1.0), (4, 2.0)]) is None


def test_sft_gates_pass_and_fail_by_spec() -> None:
    metrics = {"train_loss": 0.3, "tool_call_accuracy": 0.97, "eval_loss_slope": -0.01}
    assert all(g.passed for g in SftGates().evaluate(metrics))
    failed = [g for g in SftGates(max_loss=0.2).evaluate(metrics) if not g.passed]
    assert [(g.name, g.value, g.op, g.threshold) for g in failed] == [("sft.train_loss", 0.3, "<", 0.2)]
    rising = SftGates().evaluate(metrics | {"eval_loss_slope": 0.02})
    assert [g.name for g in rising if not g.passed] == ["sft.eval_loss_slope"]


def test_grpo_reward_window_scales_with_the_run() -> None:
    rewards = [-1.0] * 90 + [0.5, 1.0] * 5  # 100 steps: the window is the last 10
    stats = gates.reward_window(log("reward", rewards), window=500)
    assert stats["reward_window"] == 10
    assert stats["reward_mean_last"] == pytest.approx(0.75)
    assert stats["reward_mean_first"] == -1.0  # the same window at the start: the reward moved
    assert stats["reward_std"] == pytest.approx(0.25)
    assert stats["reward_max"] == 1.0
    assert all(g.passed for g in GrpoGates().evaluate(stats))
    flat = gates.reward_window(log("reward", [0.5] * 20), window=500)
    assert [g.name for g in GrpoGates().evaluate(flat) if not g.passed] == [
        "grpo.reward_std",
        "grpo.reward_max",
    ]
    assert gates.reward_window([], window=500) == {}


def test_ipo_kl_gate_warns_then_aborts() -> None:
    spec = IpoGates(kl_warn=0.3, kl_abort=0.5)
    warn = spec.evaluate({"kl": 0.4, "chosen_over_rejected": 0.9, "final_loss": 1.0})
    assert [(g.severity, g.passed) for g in warn if g.name == "ipo.kl"] == [("warn", False), ("abort", True)]
    abort = spec.evaluate({"kl": 0.6, "chosen_over_rejected": 0.9, "final_loss": 1.0})
    assert [(g.severity, g.passed) for g in abort if g.name == "ipo.kl"] == [
        ("warn", False),
        ("abort", False),
    ]
