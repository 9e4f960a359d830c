"""`moa datagen preferences`: sample N agent episodes per task with the SFT policy, execute
them, rank them into IPO preference pairs.

For each training task (data/{lang}/core_agent/train: the trajectories' tasks, whose
repository states are known) the SFT policy (base + {lang}_core_agent) runs `samples` full
agent episodes at the spec's temperature through the real executor (`moa.agent.rollout`);
what each episode left in its repository is executed by the language's evaluator; the
episodes are ranked by `moa.agent.ranking` (hard outcome tiers, then idioms, then size)
and its informative pairs are written as

    data/{lang}/ipo/train/pairs.jsonl   {"prompt", "chosen", "rejected", "id", "reason",
                                         "chosen_outcome", "rejected_outcome", "chosen_reward", ...}
    data/{lang}/ipo/metrics.json        written last

`prompt` is the task's Harmony prompt in completion mode; `chosen`/`rejected` are episode
continuations through the model's last turn (its turns and the observations those turns
answered; the observation of a last call is left out: `Episode.through_last_turn`). A pair is only formed
from episodes that differ in what the judge found; an episode whose text is not valid Harmony
cannot be written as training data and is counted, never repaired. When sampling yields few
informative pairs (a weak policy fails every sample the same way) the metrics say so
(`tasks_without_pair_share`); nothing is made up to fill the file.

Resumable: each finished task is appended to `.progress.jsonl` in the stage's work folder;
a re-run skips those; the output appears by rename when complete.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from moa import charts
from moa.agent import ranking
from moa.api import bad_records
from moa.api.records import EvalOutcome
from moa.api.stages import StageConfig, StageSummary
from moa.stage import (
    Progress,
    StageDirs,
    already_done,
    config_option,
    exit_with,
    mirror_report,
    overrides,
    setup_logging,
    write_report,
)

log = logging.getLogger("moa.datagen")

PROGRESS = ".progress.jsonl"
FILE = "pairs.jsonl"


@dataclass
class PreferencesRun:
    config: StageConfig
    tasks: Path
    adapter: Path
    output: Path
    samples: int
    max_tasks: int | None = None
    max_pairs_per_task: int = 4

    @classmethod
    def from_config(cls, config: StageConfig, **given: Any) -> PreferencesRun:
        layout, stage = config.layout, config.spec.stages.preferences
        defaults: dict[str, Any] = {
            "tasks": layout.core_agent_train,
            "adapter": layout.sft_adapter,
            "output": layout.ipo,
            "samples": stage.samples,
            "max_tasks": stage.max_tasks,
        }
        return cls(config=config, **overrides(defaults, given))


def task_row(task: Any, episodes: list[Any], outcomes: list[EvalOutcome], max_pairs: int) -> dict[str, Any]:
    """One task's progress row: every sample's outcome, and its informative, writable pairs."""
    # An episode that changed nothing is told apart by what it did (its transcript), not by its
    # empty patch: one that broke the protocol and one that made valid calls are judged in different
    # tiers and form a pair; two identical ones still do not.
    candidates = [ep.patch or ep.transcript for ep in episodes]
    found = ranking.pairs(candidates, outcomes, max_pairs=len(episodes) ** 2)
    ranks = {r.index: r.rank for r in ranking.rank(candidates, outcomes)}
    writable = [p for p in found if episodes[p.chosen].renderable and episodes[p.rejected].renderable]
    prompt = task.prompt_text()
    pairs = [
        {
            "id": f"{task.id}:{p.chosen}>{p.rejected}",
            "task": task.id,
            "prompt": prompt,
            "chosen": episodes[p.chosen].through_last_turn,
            "rejected": episodes[p.rejected].through_last_turn,
            "reason": p.reason,
            "chosen_outcome": outcomes[p.chosen].outcome,
            "rejected_outcome": outcomes[p.rejected].outcome,
            "chosen_reward": outcomes[p.chosen].reward,
            "rejected_reward": outcomes[p.rejected].reward,
            "chosen_rank": ranks[p.chosen],  # 0 is the task's best sample
            "rejected_rank": ranks[p.rejected],
        }
        for p in writable[:max_pairs]
    ]
    return {
        "id": task.id,
        "rewards": [o.reward for o in outcomes],
        "outcomes": [o.outcome for o in outcomes],
        "turns": [ep.turns for ep in episodes],
        "invalid": [ep.ended == "invalid" for ep in episodes],
        "informative": len(found),
        "unwritable": len(found) - len(writable),
        "pairs": pairs,
    }


def summarize_rows(rows: list[dict[str, Any]], seconds: float) -> StageSummary:
    from moa.agent.judge import outcome_shares, reward_stats

    rewards = [r for row in rows for r in row["rewards"]]
    samples = len(rewards)
    pairs = sum(len(row["pairs"]) for row in rows)
    without = sum(not row["pairs"] for row in rows)
    metrics: dict[str, float] = {
        "tasks": float(len(rows)),
        "samples": float(samples),
        "pairs": float(pairs),
        "informative_pairs": float(sum(row["informative"] for row in rows)),
        "unwritable_pairs": float(sum(row["unwritable"] for row in rows)),
        "seconds": round(seconds, 2),
        **reward_stats(rewards),
    }
    if rows:
        metrics["tasks_without_pair_share"] = without / len(rows)
    if samples:
        metrics["invalid_episode_share"] = sum(i for row in rows for i in row["invalid"]) / samples
        metrics.update(outcome_shares([o for row in rows for o in row["outcomes"]]))
    message = f"{pairs} pairs from {len(rows)} tasks x {samples // max(1, len(rows))} samples"
    if rows and without:
        message += (
            f"; {without} of {len(rows)} tasks gave no informative pair (every sample judged alike, "
            "or not valid Harmony): sample more, or improve the SFT policy"
        )
    return StageSummary(stage="preferences", status="succeeded", metrics=metrics, message=message)


def preference_plots(rows: list[dict[str, Any]], folder: Path, language: str) -> list[Path]:
    """What sampling found: the reward of every sample and of the chosen and rejected sides of
    the pairs, and where in its task's ranking each side stood (0: the best sample)."""
    pairs = [p for row in rows for p in row["pairs"]]
    rewards = {
        "every sample": [r for row in rows for r in row["rewards"]],
        "chosen": [p["chosen_reward"] for p in pairs],
        "rejected": [p["rejected_reward"] for p in pairs],
    }
    ranks = {
        side: [p[f"{side}_rank"] for p in pairs if f"{side}_rank" in p] for side in ("chosen", "rejected")
    }
    plots = [
        charts.histograms(
            folder / "rewards.png", f"Preference samples {language}: reward", rewards, "reward"
        ),
        charts.histograms(
            folder / "ranks.png",
            f"Preference pairs {language}: rank in the task",
            ranks,
            "rank",
            integer=True,
        ),
    ]
    return [p for p in plots if p is not None]


def run_preferences(run: PreferencesRun, echo: Any = click.echo) -> StageSummary:
    from moa.agent.executor import Caps
    from moa.agent.judge import Judge
    from moa.agent.policy import Policy, limit_cpu_threads, load_adapter, load_base
    from moa.agent.rollout import run_episodes
    from moa.agent.tasks import read_good_tasks

    dirs = StageDirs(run.output)
    done_summary = already_done("preferences", dirs.output, echo)
    if done_summary is not None:
        return done_summary

    spec = run.config.spec
    stage = spec.stages.preferences
    samples = run.samples
    reports = run.config.layout.reports / "preferences"
    tasks, skipped = read_good_tasks(run.tasks, spec.language, run.max_tasks, reports, echo)
    if not tasks:
        raise click.ClickException(
            f"no {spec.language} tasks under {run.tasks}{bad_records.note(skipped, reports)}: run `moa datagen trajectories`"
        )
    started = time.monotonic()
    dirs.work.mkdir(parents=True, exist_ok=True)
    progress = dirs.work / PROGRESS
    done = {}
    if progress.exists():
        done = {r["id"]: r for r in map(json.loads, progress.read_text().splitlines()) if r}
        echo(f"resuming: {len(done)} tasks already sampled, {len(tasks) - len(done)} to go")
    todo = [t for t in tasks if t.id not in done]

    if todo:
        limit_cpu_threads()
        model, tokenizer, backend = load_base(run.config.layout.base_model(spec.base_model), spec.lora)
        model = load_adapter(model, run.adapter, trainable=False)
        policy = Policy(model, tokenizer, stage.temperature, stage.max_new_tokens, spec.lora.max_seq_length)
        timeout = float(spec.data.limits.timeouts.test_seconds)
        echo(
            f"sampling {samples} episodes x {len(todo)} tasks with {run.adapter.name} ({backend.describe()})"
        )
        with (
            Judge(spec.stages.grpo.rewards, timeout) as judge,
            progress.open("a") as fh,
            Progress("preferences", len(tasks), len(done), echo) as tick,
        ):
            for task in todo:
                episodes = run_episodes(policy, task, samples, stage.max_turns, Caps(test_timeout_s=timeout))
                row = task_row(task, episodes, judge.judge_episodes(task, episodes), run.max_pairs_per_task)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                done[task.id] = row
                tick(f"task {task.id}: rewards {row['rewards']} -> {len(row['pairs'])} pairs")

    rows = [done[t.id] for t in tasks if t.id in done]
    out = dirs.result / "train" / FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for row in rows:
            for pair in row["pairs"]:
                fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    summary = summarize_rows(rows, time.monotonic() - started)
    summary.metrics["malformed_records"] = float(len(skipped))
    plots = preference_plots(rows, dirs.result / "plots", spec.language)
    write_report(dirs.result / "report.md", spec.language, "", summary, plots=plots)
    dirs.publish(summary)
    mirror_report(run.output, reports)
    echo(f"preferences: {summary.message}")
    return summary


@click.command("preferences")
@config_option()
@click.option(
    "--tasks", type=click.Path(path_type=Path), default=None, help="Task rows (default: SFT train)."
)
@click.option(
    "--adapter", type=click.Path(path_type=Path), default=None, help="Policy adapter (default: SFT)."
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Output folder.")
@click.option("--max-tasks", type=int, default=None, help="Sample at most N tasks.")
@click.option("--samples", type=int, default=None, help="Episodes per task (default: the spec's).")
def preferences_cmd(
    config_path: Path,
    tasks: Path | None,
    adapter: Path | None,
    output: Path | None,
    max_tasks: int | None,
    samples: int | None,
) -> None:
    """Sample agent episodes with the SFT policy, execute and rank them into IPO pairs."""
    setup_logging()
    run = PreferencesRun.from_config(
        StageConfig.load(config_path),
        tasks=tasks,
        adapter=adapter,
        output=output,
        max_tasks=max_tasks,
        samples=samples,
    )
    exit_with(run_preferences(run), run.output)
