"""`moa train grpo`: GRPO on repair tasks, rewarded by executing what the model writes.

TRL's GRPOTrainer continues the language's one adapter (the IPO adapter when it exists,
else the SFT one). The reference policy of the KL term is the SFT policy (DESIGN.md): TRL
makes a frozen "ref" copy of the starting adapter, and when that is the IPO adapter the SFT
adapter's weights are loaded into the copy.
Each step samples `num_generations` completions per task prompt; the reward function parses
every completion with `moa.harmony` (`moa.agent.rollout.parse_turn`) and has the judge
execute it: an apply_patch call is applied to the task's buggy state and run through the
language's evaluator (sandboxed, cached, in parallel: `evaluate_many`), a malformed turn is
an invalid tool call, a valid turn that edits nothing leaves the buggy state, which is
executed as it is. The reward is the spec's table value of the judged outcome; nothing is
computed from the text itself.

A GRPO prompt is the task prompt plus one real tool round: the executor's `read_file` of the
region around the bug, so the next turn can be a fix. (Full multi-turn episodes are what
preferences and eval run; here each sample is one turn so TRL's loss sees exactly the
tokens the policy wrote.)

Long-context curriculum: every task's prompt is measured in tokens; at each step the
curriculum's `max_length` admits the tasks whose prompt fits, and caps completions at what
is left of it (and at `max_new_tokens`). A callback switches both at the configured steps
and logs the switch (also as `curriculum_max_length` in the history).

Outputs (checkpoints/adapters/{lang}_grpo): the adapter, history.json, plots/reward.png,
report.md, metrics.json (last) with the gates on the logged rewards (`gates.reward_window`).
Resumes from the last checkpoint of a killed run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from moa import harmony as h
from moa.agent.judge import Judge
from moa.agent.policy import decode
from moa.agent.ranking import TIERS
from moa.agent.rollout import parse_turn
from moa.agent.tasks import RepairTask
from moa.api import bad_records
from moa.api.gates import GateResult
from moa.api.stages import StageConfig, StageSummary
from moa.api.training import GrpoStage
from moa.stage import (
    StageDirs,
    already_done,
    exit_with,
    mirror_report,
    overrides,
    setup_logging,
    stage_options,
    summarize,
    write_report,
)
from moa.trainer import gates, history, plots
from moa.trainer.arguments import trackers, trainer_kwargs

log = logging.getLogger("moa.trainer")

OUTCOME_PREFIX = "outcomes/"  # logged per step: the share of each judged outcome
READ_CONTEXT_LINES = 15  # lines shown on each side of the bug in the prompt's read_file


@dataclass
class GrpoRun:
    config: StageConfig
    tasks: Path
    adapter: Path
    output: Path
    reference: Path
    max_steps: int | None = None
    max_tasks: int | None = None

    @classmethod
    def from_config(cls, config: StageConfig, **given: Any) -> GrpoRun:
        layout = config.layout
        start = (
            layout.ipo_adapter
            if (layout.ipo_adapter / "adapter_config.json").exists()
            else layout.sft_adapter
        )
        defaults: dict[str, Any] = {
            "tasks": layout.grpo_tasks,
            "adapter": start,
            "reference": layout.sft_adapter,
            "output": layout.grpo_adapter,
            "max_steps": config.spec.stages.grpo.max_steps,
        }
        return cls(config=config, **overrides(defaults, given))


def grpo_prompt(task: RepairTask, timeout_s: float) -> str:
    """The task prompt, then a real read_file of the lines around the bug and its observation."""
    from moa.agent.executor import Caps, Executor
    from moa.agent.workspace import Workspace, parse_unified_diff

    fd = parse_unified_diff(task.diff)[0]
    line = fd.hunks[0][0] if fd.hunks else 1
    args = {
        "path": fd.path,
        "start_line": max(1, line - READ_CONTEXT_LINES),
        "end_line": line + READ_CONTEXT_LINES,
    }
    with Workspace.create(task.state) as ws:
        obs = Executor(ws, caps=Caps(test_timeout_s=timeout_s)).call("read_file", args)
    return task.prompt_text([h.tool_call("read_file", args), h.tool_result("read_file", obs.text)])


@dataclass
class Curriculum:
    """Which tasks a step may draw, and how long a completion may be, at the current length."""

    stage: GrpoStage
    prompt_tokens: list[int]
    max_length: int = 0
    eligible: list[int] = field(default_factory=list)
    switches: list[tuple[int, int, int]] = field(default_factory=list)  # (step, max_length, tasks)

    def at(self, step: int) -> bool:
        """Move to the length of `step`; True when it changed."""
        length = self.stage.max_length_at(step)
        if length == self.max_length:
            return False
        self.max_length = length
        fits = [i for i, n in enumerate(self.prompt_tokens) if n < length]
        if not fits:  # nothing fits: the shortest task, rather than no training at all
            shortest = min(self.prompt_tokens)
            fits = [i for i, n in enumerate(self.prompt_tokens) if n == shortest]
            log.warning(
                "curriculum: no task prompt fits %d tokens; using the shortest (%d)", length, shortest
            )
        self.eligible = fits
        self.switches.append((step, length, len(fits)))
        log.info(
            "curriculum: step %d: max length %d, %d of %d tasks, completions up to %d tokens",
            step,
            length,
            len(fits),
            len(self.prompt_tokens),
            self.completion_tokens,
        )
        return True

    @property
    def completion_tokens(self) -> int:
        longest = max(self.prompt_tokens[i] for i in self.eligible)
        return max(1, min(self.stage.max_new_tokens, self.max_length - longest))

    def pick(self, index: int) -> int:
        """The task behind dataset row `index`: rows map onto the eligible tasks, so TRL's
        sampler (which repeats each row num_generations times) keeps its groups."""
        return self.eligible[index % len(self.eligible)]


def curriculum_callback(curriculum: Curriculum, trainer_ref: list[Any]) -> Any:
    from transformers import TrainerCallback

    class CurriculumSwitch(TrainerCallback):  # type: ignore[misc]
        """Applies the curriculum at step boundaries (from the next batch drawn) and records
        the current length in the logged history."""

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if curriculum.at(state.global_step) and trainer_ref:
                trainer = trainer_ref[0]
                trainer.max_completion_length = curriculum.completion_tokens
                trainer.generation_config.max_new_tokens = curriculum.completion_tokens
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if state.log_history:
                state.log_history[-1]["curriculum_max_length"] = curriculum.max_length
            return control

    return CurriculumSwitch()


class ExecutionReward:
    """TRL reward function: decode each completion with its special tokens, parse it, and let
    the judge execute it. Keeps every judged outcome for the stage's metrics."""

    __name__ = "execution_reward"

    def __init__(self, tokenizer: Any, tasks: dict[str, RepairTask], judge: Judge) -> None:
        self.tokenizer, self.tasks, self.judge = tokenizer, tasks, judge
        self.outcomes: list[str] = []

    def __call__(self, prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], task_id: list[str], **kwargs: Any) -> list[float]:  # fmt: skip
        rewards = self.score([decode(self.tokenizer, ids) for ids in completion_ids], task_id)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:  # into the logged history, so the shares survive a resume
            batch = self.outcomes[-len(rewards) :]
            for tier in TIERS:
                log_metric(f"{OUTCOME_PREFIX}{tier}", batch.count(tier) / len(batch))
        return rewards

    def score(self, texts: list[str], task_ids: list[str]) -> list[float]:
        turns = [parse_turn(t) for t in texts]
        outcomes = self.judge.judge(
            [(self.tasks[tid], turn.patch, turn.problem) for tid, turn in zip(task_ids, turns, strict=True)]
        )
        self.outcomes += [o.outcome for o in outcomes]
        return [o.reward for o in outcomes]


def grpo_summary(
    log_history: history.History,
    stage: GrpoStage,
    metrics: dict[str, float],
    malformed: tuple[GateResult, str] | None = None,
) -> StageSummary:
    """Gate metrics from the logged rewards (`gates.reward_window`) checked against the spec's
    GRPO gates, with the share of each judged outcome over the run (every step judges the same
    number of completions, so the mean of the per-step shares is the share); `malformed`: the
    malformed-records gate on the tasks read (`bad_records.gate`)."""
    metrics = {**metrics, **gates.reward_window(log_history, stage.gates.window)}
    for tier in TIERS:
        shares = history.values(log_history, f"{OUTCOME_PREFIX}{tier}")
        if shares:
            metrics[f"share_{tier}"] = sum(shares) / len(shares)
    results, notes = stage.gates.evaluate(metrics), []
    if malformed is not None:
        results, notes = [*results, malformed[0]], [malformed[1]]
    return summarize("grpo", metrics, results, notes=notes)


def use_reference(model: Any, reference: Path, start: Path) -> None:
    """Load the reference policy's adapter weights into TRL's frozen "ref" adapter (TRL copied
    the starting adapter there; nothing to do when that already is the reference)."""
    if "ref" not in getattr(model, "peft_config", {}) or reference.resolve() == start.resolve():
        return
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = reference / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"no reference adapter weights at {weights}: run `moa train sft` first")
    loaded = set_peft_model_state_dict(model, load_file(weights), adapter_name="ref")
    if loaded.unexpected_keys:
        raise ValueError(f"{weights} does not fit the adapter being trained: {loaded.unexpected_keys[:3]}")
    log.info("reference policy: %s (training continues %s)", reference, start)


def grpo_args(
    stage: GrpoStage,
    backend: Any,
    dirs: StageDirs,
    max_steps: int,
    completion_tokens: int,
    report_to: Sequence[str] = (),
) -> Any:
    """TRL's GRPOConfig from the spec's GRPO section (sampling, KL beta, batch of whole groups)."""
    from trl import GRPOConfig

    kwargs = trainer_kwargs(stage, backend, dirs, max_steps, report_to)
    kwargs.update(eval_strategy="no", per_device_eval_batch_size=stage.num_generations)
    # TRL generates in groups of num_generations per prompt: a step's batch must hold whole groups.
    groups = -(-kwargs.get("per_device_train_batch_size", 1) // stage.num_generations)
    kwargs["per_device_train_batch_size"] = groups * stage.num_generations
    return GRPOConfig(
        **kwargs,
        num_generations=stage.num_generations,
        temperature=stage.temperature,
        max_completion_length=completion_tokens,
        beta=stage.beta,
        remove_unused_columns=False,
        gradient_checkpointing=backend.device == "cuda",  # memory for the 20B; only slows a CPU run
        shuffle_dataset=True,
    )


def run_grpo(run: GrpoRun) -> StageSummary:
    dirs = StageDirs(run.output)
    done = already_done("grpo", dirs.output)
    if done is not None:
        return done

    from datasets import Dataset
    from trl import GRPOTrainer

    from moa.agent.policy import limit_cpu_threads, load_adapter, load_base
    from moa.agent.tasks import read_good_tasks
    from moa.trainer.callbacks import progress_callbacks

    spec = run.config.spec
    stage = spec.stages.grpo
    timeout = float(spec.data.limits.timeouts.test_seconds)
    limit_cpu_threads()
    reports = run.config.layout.reports / "grpo"
    tasks, skipped = read_good_tasks(run.tasks, spec.language, run.max_tasks, reports, click.echo)
    if not tasks:
        raise click.ClickException(
            f"no {spec.language} GRPO tasks under {run.tasks}{bad_records.note(skipped, reports)}: run `moa datagen trajectories`"
        )

    model, tokenizer, backend = load_base(run.config.layout.base_model(spec.base_model), spec.lora)
    model = load_adapter(model, run.adapter, trainable=True)
    prompts = [grpo_prompt(t, timeout) for t in tasks]
    curriculum = Curriculum(
        stage, [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    )
    curriculum.at(0)

    def row(batch: dict[str, list[int]]) -> dict[str, list[str]]:
        picked = [curriculum.pick(i) for i in batch["row"]]
        return {"prompt": [prompts[k] for k in picked], "task_id": [tasks[k].id for k in picked]}

    dataset = Dataset.from_dict({"row": list(range(len(tasks)))})
    dataset.set_transform(row)

    max_steps = run.max_steps
    args = grpo_args(stage, backend, dirs, max_steps, curriculum.completion_tokens, trackers(run.config))
    trainer_ref: list[Any] = []
    with Judge(stage.rewards, timeout) as judge:
        reward = ExecutionReward(tokenizer, {t.id: t for t in tasks}, judge)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[curriculum_callback(curriculum, trainer_ref), *progress_callbacks(("reward", "loss"))],
        )
        trainer_ref.append(trainer)
        use_reference(trainer.model, run.reference, run.adapter)
        resume = dirs.last_checkpoint()
        if resume is not None:
            log.info("resuming from %s", resume)
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        seconds = time.monotonic() - started

    log_history = trainer.state.log_history
    result = dirs.result
    trainer.model.save_pretrained(result)
    tokenizer.save_pretrained(result)
    history.save(log_history, result / history.FILE)

    metrics: dict[str, float] = {
        "steps": float(trainer.state.global_step),
        "train_seconds": seconds,
        "tasks": float(len(tasks)),
        "malformed_records": float(len(skipped)),
        "curriculum_switches": float(len(curriculum.switches) - 1),
        "final_max_length": float(curriculum.max_length),
    }
    malformed = bad_records.gate("grpo", skipped, spec.data.gates.max_malformed_records, reports)
    summary = grpo_summary(log_history, stage, metrics, malformed)

    plots.plot(log_history, ["reward"], result / "plots" / "reward.png", f"GRPO {spec.language}", "reward")
    plots.plot(
        log_history, ["reward_std"], result / "plots" / "reward_std.png", f"GRPO {spec.language}", "std"
    )
    write_report(result / "report.md", spec.language, backend.describe(), summary)
    dirs.publish(summary)
    mirror_report(run.output, run.config.layout.reports / "grpo")
    return summary


@click.command("grpo")
@stage_options
@click.option(
    "--adapter",
    type=click.Path(path_type=Path),
    default=None,
    help="Adapter to continue (default: IPO, else SFT).",
)
@click.option("--max-tasks", type=int, default=None, help="Train on at most N tasks.")
def grpo_cmd(
    config_path: Path,
    data: Path | None,
    output: Path | None,
    max_steps: int | None,
    adapter: Path | None,
    max_tasks: int | None,
) -> None:
    """GRPO with rewards from executing the model's patches (exit 3 when a gate fails)."""
    setup_logging()
    run = GrpoRun.from_config(
        StageConfig.load(config_path),
        tasks=data,
        output=output,
        max_steps=max_steps,
        adapter=adapter,
        max_tasks=max_tasks,
    )
    exit_with(run_grpo(run), run.output)
