"""Trainer callbacks shared by the training stages: a threshold monitor that stops a run
mid-way, and plain progress lines where no terminal shows the progress bar (pod logs)."""

from __future__ import annotations

import logging
import math
import sys
import time

from transformers import TrainerCallback

log = logging.getLogger("moa.trainer")


class ThresholdMonitor(TrainerCallback):
    """Watches one logged metric: warns once above `warn`, stops training above `abort`.

    A gate with an abort threshold holds during the run, not just at its end (IPO's KL: a
    policy that drifted too far is not worth finishing). `tripped` keeps (step, value) of the
    abort so the stage records the failed gate.
    """

    def __init__(self, key: str, warn: float, abort: float) -> None:
        self.key, self.warn, self.abort = key, warn, abort
        self.warned = False
        self.tripped: tuple[int, float] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        value = (logs or {}).get(self.key)
        if not isinstance(value, int | float):
            return control
        if math.isnan(value) or value >= self.abort:
            self.tripped = (state.global_step, float(value))
            log.error(
                "%s = %.4g at step %d reached the abort threshold %.4g: stopping",
                self.key,
                value,
                state.global_step,
                self.abort,
            )
            control.should_training_stop = True
        elif value >= self.warn and not self.warned:
            self.warned = True
            log.warning(
                "%s = %.4g at step %d is above the warning threshold %.4g",
                self.key,
                value,
                state.global_step,
                self.warn,
            )
        return control


class PlainProgress(TrainerCallback):
    """One line per logging step with the headline values, when stderr is not a terminal."""

    def __init__(self, keys: tuple[str, ...] = ("loss", "eval_loss")) -> None:
        self.keys = keys
        self.start = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        shown = [f"{k}={logs[k]:.4g}" for k in self.keys if isinstance((logs or {}).get(k), int | float)]
        if shown:
            elapsed = time.monotonic() - self.start
            print(
                f"step {state.global_step}/{state.max_steps} {' '.join(shown)} ({elapsed:.0f}s)",
                file=sys.stderr,
                flush=True,
            )
        return control


def progress_callbacks(keys: tuple[str, ...]) -> list[TrainerCallback]:
    return [] if sys.stderr.isatty() else [PlainProgress(keys)]
