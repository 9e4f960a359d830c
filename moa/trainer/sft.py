"""`moa train sft`: supervised fine-tuning of the language's adapter on Harmony agent trajectories.

TRL's SFTTrainer on pre-tokenized trajectories: the loss mask is computed here from the
Harmony structure (`moa.trainer.data.assistant_spans`: the tokens the assistant writes,
end tokens included), because a chat template cannot express gpt-oss's multi-message
assistant turns. Packing fills each sequence up to the spec's max length.

Outputs (checkpoints/adapters/{lang}_core_agent): the adapter, history.json, plots/,
report.md and metrics.json (last) with the gates: final train loss, tool-call format
accuracy on held-out prompts, and the eval-loss trend (`moa.trainer.gates`). The same probe on
the base model (adapter off) is `base_tool_call_accuracy`: where SFT started.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import click

from moa.api import bad_records
from moa.api.stages import StageConfig
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


@dataclass
class SftRun:
    """One SFT run: the stage config plus the convenience overrides of the command line."""

    config: StageConfig
    train_data: Path
    eval_data: Path
    output: Path
    format_prompts: int  # held-out prompts for tool-call format accuracy
    max_new_tokens: int
    max_steps: int | None = None

    @classmethod
    def from_config(cls, config: StageConfig, **given: object) -> SftRun:
        layout, stage = config.layout, config.spec.stages.core_agent
        defaults = {
            "train_data": layout.core_agent_train,
            "eval_data": layout.core_agent_eval,
            "output": layout.sft_adapter,
            "format_prompts": stage.tool_call_prompts,
            "max_new_tokens": stage.max_new_tokens,
        }
        return cls(config=config, **overrides(defaults, given))  # type: ignore[arg-type]


def run_sft(run: SftRun):  # -> StageSummary
    """Train (resuming from the last checkpoint of a killed run), measure, gate, publish."""
    dirs = StageDirs(run.output)
    done = already_done("sft", dirs.output)
    if done is not None:
        return done

    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from moa.agent.policy import limit_cpu_threads, load_base
    from moa.trainer import data, loading
    from moa.trainer.callbacks import progress_callbacks
    from moa.trainer.toolcalls import FormatResult, format_accuracy

    spec = run.config.spec
    stage = spec.stages.core_agent
    limit_cpu_threads()
    # A malformed trajectory is left out and named (reports/{lang}/sft/bad-records.txt), not fatal.
    skipped: list[str] = []
    train_convs = data.read_trajectories(run.train_data, skipped)
    eval_convs = data.read_trajectories(run.eval_data, skipped)
    reports = run.config.layout.reports / "sft"
    bad_records.report(skipped, reports, click.echo)
    log.info("sft: %d train / %d eval trajectories", len(train_convs), len(eval_convs))
    for kind, convs, path in (
        ("train", train_convs, run.train_data),
        ("held-out", eval_convs, run.eval_data),
    ):
        if not convs:
            raise click.ClickException(
                f"no {kind} trajectories in {path}{bad_records.note(skipped, reports)}: the train/eval split is by package, so "
                "spec.data.sources needs at least two packages (and data.evalFraction > 0)"
            )

    model, tokenizer, backend = load_base(run.config.layout.base_model(spec.base_model), spec.lora)
    model = loading.add_lora(model, spec.lora, stage.seed)
    trainable, total = loading.trainable_parameters(model)
    log.info("trainable parameters: %d of %d (%.2f%%)", trainable, total, 100 * trainable / total)

    def tokenized(convs: list) -> Dataset:
        return Dataset.from_list([data.tokenize_with_mask(tokenizer, c) for c in convs])

    kwargs = trainer_kwargs(stage, backend, dirs, run.max_steps, trackers(run.config))
    if stage.gates.eval_loss_window == 0:
        # No eval-loss trend is gated: one eval pass at the end gives the final eval loss. On CPU
        # each pass over the held-out trajectories costs minutes; ten of them were most of the demo's SFT.
        kwargs["eval_strategy"] = "no"
    args = SFTConfig(
        **kwargs,
        num_train_epochs=stage.epochs,
        max_length=spec.lora.max_seq_length,
        packing=stage.packing,
        eval_packing=False,
        dataset_num_proc=None,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=tokenized(train_convs),
        eval_dataset=tokenized(eval_convs),
        processing_class=tokenizer,
        callbacks=progress_callbacks(("loss", "eval_loss")),
    )
    resume = dirs.last_checkpoint()
    if resume is not None:
        log.info("resuming from %s", resume)
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.evaluate()  # the last point of the eval curve is the final adapter
    seconds = time.monotonic() - started

    log_history = trainer.state.log_history
    result = dirs.result
    trainer.model.save_pretrained(result)
    tokenizer.save_pretrained(result)
    history.save(log_history, result / history.FILE)

    prompts = data.tool_call_prompts(eval_convs)

    def probe() -> FormatResult:
        max_length = spec.lora.max_seq_length
        return format_accuracy(
            trainer.model, tokenizer, prompts, run.max_new_tokens, max_length, run.format_prompts
        )

    fmt = probe()
    # The same probe on the base (adapter off): what SFT started from, for the before/after table.
    with trainer.model.disable_adapter():
        base_fmt = probe()

    metrics = {
        "steps": float(trainer.state.global_step),
        "train_seconds": seconds,
        "trainable_parameters": float(trainable),
        "tool_call_prompts": float(fmt.prompts),
        "malformed_records": float(len(skipped)),
    }
    measured = {
        "train_loss": gates.final_loss(log_history),
        "eval_loss": (history.values(log_history, "eval_loss") or [None])[-1],
        "eval_loss_slope": gates.eval_loss_slope(log_history, stage.gates.eval_loss_window),
        "tool_call_accuracy": fmt.accuracy,
        "base_tool_call_accuracy": base_fmt.accuracy,
    }
    metrics.update({k: v for k, v in measured.items() if v is not None})
    malformed, where = bad_records.gate("sft", skipped, spec.data.gates.max_malformed_records, reports)
    summary = summarize("sft", metrics, [*stage.gates.evaluate(metrics), malformed], notes=[where])

    plots.plot(
        log_history, ["loss", "eval_loss"], result / "plots" / "loss.png", f"SFT {spec.language}", "loss"
    )
    write_report(result / "report.md", spec.language, backend.describe(), summary, fmt.samples)
    dirs.publish(summary)
    mirror_report(run.output, run.config.layout.reports / "sft")
    return summary


@click.command("sft")
@stage_options
@click.option("--eval-data", type=click.Path(path_type=Path), default=None, help="Held-out trajectories.")
@click.option(
    "--format-prompts",
    type=int,
    default=None,
    help="Held-out tool-call prompts to generate on (default: spec stages.coreAgent.toolCallPrompts).",
)
@click.option(
    "--max-new-tokens",
    type=int,
    default=None,
    help="Generation limit per tool-call prompt (default: spec stages.coreAgent.maxNewTokens).",
)
def sft_cmd(
    config_path: Path,
    data: Path | None,
    output: Path | None,
    max_steps: int | None,
    eval_data: Path | None,
    format_prompts: int | None,
    max_new_tokens: int | None,
) -> None:
    """Supervised fine-tuning on the Harmony agent trajectories (exit 3 when a gate fails)."""
    setup_logging()
    run = SftRun.from_config(
        StageConfig.load(config_path),
        train_data=data,
        eval_data=eval_data,
        output=output,
        max_steps=max_steps,
        format_prompts=format_prompts,
        max_new_tokens=max_new_tokens,
    )
    exit_with(run_sft(run), run.output)
