"""`moa datagen preferences`: sampled agent episodes, executed and ranked into IPO pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from repair_tasks import LORA, FixOrBreak, oracle_rows, repair_config, save_fresh_adapter, write_rows
from report_plots import assert_plots

from moa.agent.judge import Judge
from moa.agent.rollout import run_episodes
from moa.agent.tasks import read_tasks
from moa.api.training import Rewards
from moa.cli import cli
from moa.datagen.preferences import preference_plots, summarize_rows, task_row
from moa.stage import write_report
from moa.trainer.data import read_pairs

pytestmark = pytest.mark.slow


def test_tiny_model_samples_executes_and_reports_honestly(tiny_model: Path, tmp_path: Path) -> None:
    write_rows(tmp_path / "data/python/core_agent/train", oracle_rows())
    save_fresh_adapter(tiny_model, tmp_path / "checkpoints/adapters/python_core_agent", LORA)
    config = repair_config(
        tmp_path,
        tiny_model,
        "preferences",
        preferences={"samples": 2, "maxTurns": 2, "maxNewTokens": 16},
    )
    result = CliRunner().invoke(cli, ["datagen", "preferences", "--config", str(config)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "data/python/ipo"
    summary = json.loads((out / "metrics.json").read_text())
    m = summary["metrics"]
    assert m["tasks"] == 2 and m["samples"] == 4
    # A random model writes no valid Harmony: every sample is judged, none can be a pair, and
    # the stage says so instead of making pairs up.
    assert m["pairs"] == len((out / "train/pairs.jsonl").read_text().splitlines())
    assert m["reward_min"] >= -1.0 and "tasks_without_pair_share" in m
    if m["pairs"] == 0:
        assert m["tasks_without_pair_share"] == 1.0 and "no informative pair" in summary["message"]
    assert not (tmp_path / "data/python/ipo.partial").exists()
    assert_plots(tmp_path / "reports/python/preferences", ["rewards"])  # no pair, so no ranks to plot
    again = CliRunner().invoke(cli, ["datagen", "preferences", "--config", str(config)])
    assert again.exit_code == 0 and "already complete" in again.output


def test_differing_episodes_are_executed_ranked_and_written_as_ipo_pairs(tmp_path: Path) -> None:
    rows = oracle_rows()
    tasks = read_tasks(write_rows(tmp_path / "train", rows), "python")
    policy = FixOrBreak(rows)
    with Judge(Rewards(), timeout_s=120) as judge:
        written, rows = [], []
        for task in tasks:
            episodes = run_episodes(policy, task, 2, max_turns=6)  # type: ignore[arg-type]
            outcomes = judge.judge_episodes(task, episodes)
            assert outcomes[0].outcome in ("clean", "lint_warnings") and outcomes[0].tests_passed
            assert outcomes[1].outcome == "compile_error" and episodes[1].ended == "final"
            row = task_row(task, episodes, outcomes, max_pairs=4)
            assert row["rewards"] == [o.reward for o in outcomes] and len(row["pairs"]) == 1
            written += row["pairs"]
            rows.append(row)
    pair = written[0]
    assert (
        pair["chosen_outcome"] in ("clean", "lint_warnings") and pair["rejected_outcome"] == "compile_error"
    )
    assert "run_tests" in pair["chosen"] and pair["chosen"].endswith("<|return|>")
    assert all(p["chosen_rank"] < p["rejected_rank"] for p in written)
    folder = tmp_path / "report"
    plots = preference_plots(rows, folder / "plots", "python")
    write_report(folder / "report.md", "python", "", summarize_rows(rows, 1.0), plots=plots)
    assert_plots(folder, ["rewards", "ranks"])
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in written))
    assert len(read_pairs(tmp_path / "pairs.jsonl")) == 2  # what `moa train ipo` reads


def test_episodes_that_changed_nothing_pair_when_judged_apart(tmp_path: Path) -> None:
    """Without a patch, a valid call (repository unchanged: tests fail) beats a broken turn
    (invalid tool call): the pair the demo's SFT policy yields. Identical episodes never pair."""
    from moa import harmony as h
    from moa.agent.rollout import Episode
    from moa.api.records import EvalOutcome
    from moa.languages.evaluators import invalid_call

    task = read_tasks(write_rows(tmp_path / "train", oracle_rows()), "python")[0]
    output = "FAILED tests/test_x.py::test_y - AssertionError"
    valid = Episode(
        messages=[h.tool_call("run_tests", {}), h.tool_result("run_tests", output)],
        completions=["..."],
        turns=1,
        tool_calls=1,
    )
    broken = Episode(
        messages=[h.tool_call("run_tests", {"bogus": 1})],
        completions=["..."],
        turns=1,
        ended="invalid",
        problem="invalid call to functions.run_tests",
    )
    unchanged = EvalOutcome(builds=True, outcome="tests_failed", reward=0.1)
    invalid = invalid_call(broken.problem)
    row = task_row(task, [broken, valid], [invalid, unchanged], max_pairs=4)
    assert [(p["chosen_outcome"], p["rejected_outcome"]) for p in row["pairs"]] == [
        ("tests_failed", "invalid_tool_call")
    ]
    # The pair holds what the model wrote: the last call's observation (no turn answered it) is
    # not scored as the model's tokens.
    chosen = row["pairs"][0]["chosen"]
    assert chosen.endswith("<|call|>") and output not in chosen
    assert output in valid.continuation
    assert task_row(task, [valid, valid], [unchanged, invalid], max_pairs=4)["pairs"] == []
