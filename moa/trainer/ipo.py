"""`moa train ipo`: preference optimisation (IPO) of the language's adapter, against the SFT policy.

TRL's DPOTrainer with `loss_type="ipo"` and the spec's beta on preference pairs (see
`moa.trainer.data` for the record format). Two things TRL would get wrong here:

- The reference policy must be the SFT policy. Given a PEFT model with a trained adapter, TRL
  copies it into a frozen "ref" adapter and computes reference log-probs with it -- except with
  PEFT < 0.20 on adapters that use `target_parameters` (our expert LoRA), where it silently
  computes them with adapters disabled, i.e. against the raw base. So the run refuses to start
  without the "ref" copy, the reference log-probs are precomputed once with it
  (`precompute_ref_log_probs`), and a test checks they equal the SFT model's own.
- TRL appends the tokenizer's EOS to every completion that does not end with it, which would put
  a `<|return|>` after a tool call's `<|call|>`. Completions here are exact Harmony and are
  tokenized as they are.

KL is logged at every logging step as `kl`: the true KL(pi || pi_SFT) per completion token
between the policy and the frozen SFT reference, over the whole vocabulary at each token of the
chosen and rejected completions of a fixed sample of pairs (`moa.trainer.divergence`; the first
`KL_SAMPLE_PAIRS` pairs). A monitor warns at the spec's `klWarn` and stops the run at `klAbort`
(exit 3, gate recorded); the gate reads the largest value logged. `margin` is the mean
chosen-minus-rejected log-ratio on the same sample: what IPO widens.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from moa.api import bad_records
from moa.api.stages import StageConfig, StageSummary
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

if TYPE_CHECKING:
    from moa.trainer.data import Pair

log = logging.getLogger("moa.trainer")

# Pairs the KL and margin are measured on at each logging step: two forward passes per row (policy
# and reference), so a fixed sample keeps the measurement a small share of a step.
KL_SAMPLE_PAIRS = 32


@dataclass
class IpoRun:
    config: StageConfig
    pairs: Path
    adapter: Path  # the SFT adapter: trained further, and the reference policy
    output: Path
    max_steps: int | None = None

    @classmethod
    def from_config(cls, config: StageConfig, **given: object) -> IpoRun:
        layout = config.layout
        defaults = {"pairs": layout.ipo_train, "adapter": layout.sft_adapter, "output": layout.ipo_adapter}
        return cls(config=config, **overrides(defaults, given))  # type: ignore[arg-type]


def make_trainer_class():  # type: ignore[no-untyped-def]
    """DPOTrainer with exact Harmony tokenization and the KL estimate (built lazily: TRL is heavy)."""
    from datasets.fingerprint import Hasher
    from trl import DPOTrainer

    from moa.trainer import divergence
    from moa.trainer.divergence import Drift, Row
    from moa.trainer.loading import REFERENCE_ADAPTER

    class IpoTrainer(DPOTrainer):  # type: ignore[misc]
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):  # type: ignore[no-untyped-def]
            def tokenize(ex):  # type: ignore[no-untyped-def]
                ids = {
                    k: processing_class(ex[k], add_special_tokens=False)["input_ids"]
                    for k in ("prompt", "chosen", "rejected")
                }
                return {
                    "prompt_ids": ids["prompt"],
                    "chosen_ids": ids["chosen"],
                    "rejected_ids": ids["rejected"],
                }

            # TRL caches reference log-probs by (dataset fingerprint, weights); the truncation that
            # shapes them must be part of the fingerprint, or a run with another max_length reuses them.
            fingerprint = Hasher.hash((dataset._fingerprint, args.max_length, args.truncation_mode))
            return dataset.map(
                tokenize,
                remove_columns=dataset.column_names,
                new_fingerprint=fingerprint,
                desc=f"Tokenizing {dataset_name} pairs",
            )

        kl_rows: tuple[list[Row], list[Row]] = ([], [])

        def drift(self) -> tuple[Drift, Drift]:
            """(chosen, rejected) drift from the SFT reference on the KL sample."""
            model = self.accelerator.unwrap_model(self.model)
            pad = self.processing_class.pad_token_id
            return tuple(divergence.drift(model, rows, REFERENCE_ADAPTER, pad) for rows in self.kl_rows)  # type: ignore[return-value]

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs and self.kl_rows[0]:  # a training step's log line
                chosen, rejected = self.drift()
                tokens = chosen.tokens + rejected.tokens
                logs["kl"] = (chosen.kl * chosen.tokens + rejected.kl * rejected.tokens) / max(1, tokens)
                logs["margin"] = sum(
                    c - r for c, r in zip(chosen.log_ratios, rejected.log_ratios, strict=True)
                ) / len(chosen.log_ratios)
            super().log(logs, start_time)

    return IpoTrainer


def build_trainer(run: IpoRun, dirs: StageDirs, pairs: list[Pair] | None = None):  # type: ignore[no-untyped-def]
    """(trainer, KL monitor, backend description, pair count); reference log-probs are computed here.
    `pairs`: the pairs already read (default: read them from `run.pairs`)."""
    from datasets import Dataset
    from trl import DPOConfig

    from moa.agent.policy import limit_cpu_threads, load_adapter, load_base
    from moa.trainer import data, divergence, loading
    from moa.trainer.callbacks import ThresholdMonitor, progress_callbacks

    spec = run.config.spec
    stage = spec.stages.ipo
    limit_cpu_threads()
    if pairs is None:
        pairs = data.read_pairs(run.pairs)
    log.info("ipo: %d preference pairs, beta %g", len(pairs), stage.beta)
    model, tokenizer, backend = load_base(run.config.layout.base_model(spec.base_model), spec.lora)
    model = load_adapter(model, run.adapter, trainable=True)

    dataset = Dataset.from_list(
        [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]
    )
    kwargs = trainer_kwargs(stage, backend, dirs, run.max_steps, trackers(run.config)) | {
        "eval_strategy": "no"
    }
    args = DPOConfig(
        **kwargs,
        num_train_epochs=stage.epochs,
        loss_type=["ipo"],
        beta=stage.beta,
        max_length=spec.lora.max_seq_length,
        # An agent prompt can outgrow max_length; keep its end (the latest turns) and the whole
        # completion, rather than TRL's default of keeping the start and cutting the completion.
        truncation_mode="keep_end",
        precompute_ref_log_probs=True,
    )
    monitor = ThresholdMonitor("kl", stage.gates.kl_warn, stage.gates.kl_abort)
    trainer = make_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,  # chosen-over-rejected is measured on the pairs after training
        processing_class=tokenizer,
        callbacks=[monitor, *progress_callbacks(("loss", "kl"))],
    )
    trainer.kl_rows = divergence.pair_rows(tokenizer, pairs[:KL_SAMPLE_PAIRS], spec.lora.max_seq_length)
    if loading.REFERENCE_ADAPTER not in trainer.model.peft_config:
        raise RuntimeError(
            "TRL did not keep a frozen copy of the SFT adapter as the reference policy (PEFT < 0.20 with "
            "expert target_parameters?): the reference would be the raw base. Upgrade peft to >= 0.20."
        )
    return trainer, monitor, backend.describe(), len(pairs)


def read_good_pairs(run: IpoRun) -> tuple[list[Pair], list[str]]:
    """The well-formed pairs, and every malformed record named `file:line: why`: all of them in
    the stage's reports/{lang}/ipo/bad-records.txt, the first few logged. A bad record is left
    out rather than stopping the stage (issue 15: no input crashes a stage)."""
    from moa.trainer import data

    skipped: list[str] = []
    pairs = data.read_pairs(run.pairs, skipped)
    bad_records.report(skipped, run.config.layout.reports / "ipo", click.echo)
    return pairs, skipped


def no_pairs(run: IpoRun, dirs: StageDirs, skipped: Sequence[str] = ()) -> StageSummary:
    """No informative pair to learn from: fail clearly, or (opted in) carry the SFT adapter forward."""
    if not run.config.spec.stages.ipo.skip_without_pairs:
        bad = bad_records.note(skipped, run.config.layout.reports / "ipo")
        raise click.ClickException(
            f"no preference pairs in {run.pairs}{bad}: every sampled episode was judged alike. Sample more "
            "(stages.preferences.samples, temperature), improve the SFT policy, or set "
            "stages.ipo.skipWithoutPairs to carry the SFT adapter forward"
        )
    shutil.copytree(
        run.adapter, dirs.result, dirs_exist_ok=True, ignore=shutil.ignore_patterns("metrics.json")
    )
    summary = StageSummary(
        stage="ipo",
        status="succeeded",
        metrics={"pairs": 0.0, "skipped": 1.0, "malformed_records": float(len(skipped))},
        message="IPO skipped: no informative preference pairs; the SFT adapter carries forward (skipWithoutPairs)",
    )
    log.warning(summary.message)
    dirs.publish(summary)
    mirror_report(run.output, run.config.layout.reports / "ipo")
    return summary


def run_ipo(run: IpoRun) -> StageSummary:
    dirs = StageDirs(run.output)
    done = already_done("ipo", dirs.output)
    if done is not None:
        return done

    from moa.agent.policy import ADAPTER_NAME

    spec = run.config.spec
    stage = spec.stages.ipo
    good, skipped = read_good_pairs(run)
    if not good:
        return no_pairs(run, dirs, skipped)
    trainer, monitor, backend, pairs = build_trainer(run, dirs, good)
    resume = dirs.last_checkpoint()
    if resume is not None:
        log.info("resuming from %s", resume)
    # Measured before training, where the policy is the reference: margin and accuracy 0 (a
    # reference that is not the SFT policy shows here), the "before" of the before/after table.
    start = trainer.evaluate() if resume is None else {}
    started = time.monotonic()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.monotonic() - started
    final = trainer.evaluate() if monitor.tripped is None else {}

    log_history = trainer.state.log_history
    result = dirs.result
    trainer.model.save_pretrained(result, selected_adapters=[ADAPTER_NAME])  # not the frozen ref copy
    trainer.processing_class.save_pretrained(result)
    history.save(log_history, result / history.FILE)

    metrics = {
        "steps": float(trainer.state.global_step),
        "train_seconds": seconds,
        "pairs": float(pairs),
        "malformed_records": float(len(skipped)),
    }
    measured = {
        "kl": gates.max_value(log_history, "kl"),
        "final_loss": gates.final_loss(log_history),
        "chosen_over_rejected": final.get("eval_rewards/accuracies"),
        "eval_margin": final.get("eval_rewards/margins"),
        "chosen_over_rejected_start": start.get("eval_rewards/accuracies"),
        "eval_margin_start": start.get("eval_rewards/margins"),
        "kl_final": (history.values(log_history, "kl") or [None])[-1],
        "margin": (history.values(log_history, "margin") or [None])[-1],
    }
    metrics.update({k: float(v) for k, v in measured.items() if v is not None})
    message = ""
    if monitor.tripped is not None:
        step, value = monitor.tripped
        message = f"aborted at step {step}: kl {value:.4g} >= klAbort {stage.gates.kl_abort:.4g}"
    reports = run.config.layout.reports / "ipo"
    malformed, where = bad_records.gate("ipo", skipped, spec.data.gates.max_malformed_records, reports)
    summary = summarize("ipo", metrics, [*stage.gates.evaluate(metrics), malformed], message, [where])

    plots.plot(log_history, ["loss"], result / "plots" / "loss.png", f"IPO {spec.language}", "loss")
    plots.plot(
        log_history,
        ["kl", "margin"],
        result / "plots" / "kl.png",
        f"IPO {spec.language}: drift from SFT",
    )
    write_report(result / "report.md", spec.language, backend, summary)
    dirs.publish(summary)
    mirror_report(run.output, run.config.layout.reports / "ipo")
    return summary


@click.command("ipo")
@stage_options
@click.option(
    "--adapter", type=click.Path(path_type=Path), default=None, help="SFT adapter (default: the layout's)."
)
def ipo_cmd(
    config_path: Path, data: Path | None, output: Path | None, max_steps: int | None, adapter: Path | None
) -> None:
    """IPO on preference pairs, with the SFT policy as reference (exit 3 when a gate fails)."""
    setup_logging()
    run = IpoRun.from_config(
        StageConfig.load(config_path), pairs=data, adapter=adapter, output=output, max_steps=max_steps
    )
    exit_with(run_ipo(run), run.output)
