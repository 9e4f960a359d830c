"""`moa train grpo`: GRPO on repair tasks, rewarded by executing what the model writes.

TRL's GRPOTrainer continues the language's one adapter (the IPO adapter when it exists,
else the SFT one). The reference policy of the KL term is the SFT policy (DESIGN.md): TRL
makes a frozen "ref" copy of the starting adapter, and when that is the IPO adapter the SFT
adapter's weights are loaded into the copy.
Each step runs `num_generations` agent episodes per task prompt (`AgentRollout`, TRL's
`rollout_func`): the prompt is the task as the user reports it (`moa.agent.tasks.prompt_messages`:
the failing tests, their output, the repository's layout; nothing says where the bug is), and
the policy works through the agent tools up to the spec's `maxTurns`, each call run by the one
executor in a private workspace of the buggy state and its observation appended. The judge
executes what the episode left behind: its changes are applied to the task's buggy state and run
through the language's evaluator (sandboxed, cached, in parallel: `evaluate_many`), an episode
that broke the protocol before it changed anything is an invalid tool call, one that changed
nothing leaves the buggy state, which is executed as it is. The reward is the spec's table value
of the judged outcome; nothing is computed from the text itself. The loss sees only the tokens
the policy wrote: observations are masked out (TRL's `env_mask`).

Long-context curriculum: every task's prompt is measured in tokens; at each step the
curriculum's `max_length` admits the tasks whose prompt fits, and caps completions at what
is left of it (each turn at most `max_new_tokens`). A callback switches both at the configured steps
and logs the switch (also as `curriculum_max_length` in the history).

Outputs (checkpoints/adapters/{lang}_grpo): the adapter, history.json, plots/reward.png,
report.md, metrics.json (last) with the gates on the logged rewards (`gates.reward_window`).
Resumes from the last checkpoint of a killed run.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from moa.agent.executor import Caps
from moa.agent.judge import Judge, episode_item
from moa.agent.policy import Policy
from moa.agent.ranking import TIERS
from moa.agent.rollout import Episode, run_episodes
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
EPISODE_PREFIX = "episodes/"  # logged per step: mean turns and tool calls of an episode


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
        if not fits:  # an episode must have room to write at least one turn
            raise click.ClickException(
                f"stages.grpo.curriculum: maxLength {length} (from step {step}) holds no task prompt "
                f"(the shortest is {min(self.prompt_tokens)} tokens): raise it"
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
        """The most an episode may add to the longest eligible prompt: its turns and observations."""
        longest = max(self.prompt_tokens[i] for i in self.eligible)
        return max(1, min(self.stage.max_turns * self.stage.max_new_tokens, self.max_length - longest))

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
                trainer_ref[0].max_completion_length = curriculum.completion_tokens
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if state.log_history:
                state.log_history[-1]["curriculum_max_length"] = curriculum.max_length
            return control

    return CurriculumSwitch()


class AgentRollout:
    """TRL's `rollout_func`: the agent episodes of a batch, token by token.

    Why a rollout function and not TRL's `tools` / `environment_factory`: those parse tool calls
    out of a chat template's rendering and append results through the template, while moa's
    model speaks Harmony through `moa.harmony`, and its tools are the executor's, with the
    observations SFT trained on. So the episodes are the one agent loop every stage uses
    (`moa.agent.rollout.run_episodes`, with `tokens=True` so the sampled ids and an observation
    mask are kept) and TRL gets back ids and `env_mask`, which it multiplies into the loss mask.

    TRL's sampler repeats each dataset row `num_generations` times in a row: each run of equal
    prompts is one task's group, run in lock step."""

    def __init__(self, tasks: dict[str, RepairTask], stage: GrpoStage, curriculum: Curriculum, caps: Caps) -> None:  # fmt: skip
        self.tasks, self.stage, self.curriculum, self.caps = tasks, stage, curriculum, caps

    def __call__(self, prompts: list[str], trainer: Any) -> dict[str, list[Any] | None]:
        policy = Policy(
            trainer.accelerator.unwrap_model(trainer.model),
            trainer.processing_class,
            self.stage.temperature,
            self.stage.max_new_tokens,
            max_length=self.curriculum.max_length,
        )
        episodes: list[Episode] = []
        start = 0
        while start < len(prompts):
            end = start
            while end < len(prompts) and prompts[end] == prompts[start]:
                end += 1
            task = self.tasks[prompts[start]]
            episodes += run_episodes(policy, task, end - start, self.stage.max_turns, self.caps, tokens=True)
            start = end
        kept = [ep.tokens.trimmed() for ep in episodes if ep.tokens is not None]
        return {
            "prompt_ids": [t.prompt for t in kept],
            "completion_ids": [t.ids for t in kept],
            "env_mask": [t.mask for t in kept],
            "logprobs": None,  # TRL scores the completions with the model itself (no vLLM here)
            "episode": episodes,  # for the reward function
        }


class ExecutionReward:
    """TRL reward function: the judge executes what each episode left behind. Keeps every judged
    outcome for the stage's metrics."""

    __name__ = "execution_reward"

    def __init__(self, tasks: dict[str, RepairTask], judge: Judge) -> None:
        self.tasks, self.judge = tasks, judge
        self.outcomes: list[str] = []

    def __call__(self, prompts: list[Any], completions: list[Any], task_id: list[str], episode: list[Episode], **kwargs: Any) -> list[float]:  # fmt: skip
        rewards = self.score(episode, task_id)
        log_metric = kwargs.get("log_metric")
        if log_metric is not None:  # into the logged history, so the shares survive a resume
            batch = self.outcomes[-len(rewards) :]
            for tier in TIERS:
                log_metric(f"{OUTCOME_PREFIX}{tier}", batch.count(tier) / len(batch))
            log_metric(f"{EPISODE_PREFIX}turns", sum(e.turns for e in episode) / len(episode))
            log_metric(f"{EPISODE_PREFIX}tool_calls", sum(e.tool_calls for e in episode) / len(episode))
        return rewards

    def score(self, episodes: list[Episode], task_ids: list[str]) -> list[float]:
        items = [episode_item(self.tasks[t], ep) for ep, t in zip(episodes, task_ids, strict=True)]
        outcomes = self.judge.judge(items)
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
    by_prompt: dict[str, RepairTask] = {}
    for t in tasks:  # the rollout knows a task by its prompt (all TRL passes it)
        other = by_prompt.setdefault(t.prompt_text(), t)
        if other is not t:
            log.warning("task %s has the same prompt as %s: left out (the agent could not tell them apart)", t.id, other.id)  # fmt: skip
    tasks = list(by_prompt.values())
    prompts = list(by_prompt)
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
        reward = ExecutionReward({t.id: t for t in tasks}, judge)
        rollout = AgentRollout(by_prompt, stage, curriculum, Caps(test_timeout_s=timeout))
        with warnings.catch_warnings():  # TRL flags rollout_func as experimental; the pin holds its API
            warnings.filterwarnings("ignore", message="You are using 'rollout_func'")
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=reward,
                rollout_func=rollout,
                args=args,
                train_dataset=dataset,
                processing_class=tokenizer,
                callbacks=[
                    curriculum_callback(curriculum, trainer_ref),
                    *progress_callbacks(("reward", "loss")),
                ],
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
