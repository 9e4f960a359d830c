"""The TrainingArguments every training stage shares, from the spec's hyper-parameters."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from moa.agent.policy import Backend
from moa.api.stages import StageConfig
from moa.api.training import Training
from moa.stage import StageDirs
from moa.trainer.loading import optimizer_for

log = logging.getLogger("moa.trainer")


# transformers >= 5 (pinned in pyproject.toml) reads a float `warmup_steps` below 1 as a share
# of the run's optimizer steps, and 5.2 removed `warmup_ratio`. A share of exactly 1 would read
# as one step, so it is taken just below 1: ceil(n * WHOLE_RUN) is n for any run under 10^6 steps.
WHOLE_RUN = 1.0 - 1e-6


def warmup(ratio: float) -> float:
    """The spec's warmup ratio as transformers' `warmup_steps`."""
    return min(ratio, WHOLE_RUN)


def trackers(config: StageConfig) -> list[str]:
    """The spec's `stages.reportTo` for TRL's report_to; unset: TensorBoard when it is installed.

    TensorBoard writes under reports/{lang}/tensorboard/{stage} of the artifact root (transformers
    reads the folder from TENSORBOARD_LOGGING_DIR), so `tensorboard --logdir reports/` shows every
    stage of every language side by side."""
    chosen = config.spec.stages.report_to
    if chosen is None:
        chosen = ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
    if "tensorboard" in chosen:
        folder = config.layout.reports / "tensorboard" / config.stage
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(folder)
        log.info("tensorboard logs: %s", folder)
    return list(chosen)


def trainer_kwargs(
    training: Training,
    backend: Backend,
    dirs: StageDirs,
    max_steps: int | None,
    report_to: Sequence[str] = (),
) -> dict[str, Any]:
    """TrainingArguments shared by the training stages, from the spec's hyper-parameters.

    8-bit optimizers need bitsandbytes on CUDA; elsewhere the same AdamW runs in 32 bits.
    Eval runs ten times per run (`eval_steps` as a ratio), so the eval-loss trend gate has
    points whatever the run's length.
    """
    optim = optimizer_for(training.optimizer, backend)
    return {
        "output_dir": str(dirs.checkpoints),
        "max_steps": max_steps if max_steps else -1,
        "per_device_train_batch_size": training.batch_size,
        "per_device_eval_batch_size": training.batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation,
        "learning_rate": training.learning_rate,
        "lr_scheduler_type": training.lr_scheduler,
        "warmup_steps": warmup(training.warmup_ratio),
        "weight_decay": training.weight_decay,
        "optim": optim,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 0.1,
        "save_strategy": "steps",
        "save_steps": training.save_steps,
        "save_total_limit": 2,
        "seed": training.seed,
        "use_cpu": backend.device == "cpu",
        "bf16": backend.dtype == "bfloat16",
        "report_to": list(report_to),
        "disable_tqdm": not sys.stderr.isatty(),
        "dataloader_num_workers": 0,
    }
