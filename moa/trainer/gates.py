"""The gate metrics of the training stages, computed from the logged history.

The thresholds and comparators live in the spec (`moa.api.training.SftGates`, `IpoGates`,
`GrpoGates`); this module only turns a run's history into the values they are checked
against. The roadmap states the gates for runs of thousands of steps; here every window is
a fraction of the run, so the same definitions hold for a 30-step test run:

- `final_loss`: mean of the train losses logged in the last 10 % of logged points (at least
  the last one). One logged loss is one batch and noisy; a window is what "final" means.
- `eval_loss_slope`: least-squares slope (loss per step) of the eval losses in the last
  `window` fraction of eval points, taking at least the last 2 points. "Eval loss
  decreasing over the last 20 %" is `slope < 0`. With a single eval point there is no
  trend: the value is absent and the gate fails (a metric is computed or absent).
- `reward_window`: GRPO's "mean reward of the last 500 steps" over the last
  min(window, 10 % of steps) logged rewards (at least 1), their standard deviation (a policy
  that collapsed to one behaviour has std ~0) and the maximum over the whole run
  ("max >= 0.7 at least once").
- IPO: `kl` is the largest KL estimate logged (the abort threshold holds at every point, not
  just at the end), `chosen_over_rejected` the share of pairs whose implicit reward margin is
  > 0 after training, `final_loss` as above; a NaN loss anywhere is a collapse, reported as
  an absent final loss so the gate fails.
"""

from __future__ import annotations

import math

from moa.trainer.history import History, series, values


def tail(points: list, fraction: float, minimum: int) -> list:
    """The last `fraction` of `points`, at least `minimum` of them (or all there are)."""
    n = max(minimum, math.ceil(len(points) * fraction))
    return points[-n:] if points else []


def final_loss(history: History, key: str = "loss") -> float | None:
    losses = values(history, key)
    if not losses or any(math.isnan(v) for v in losses):
        return None
    last = tail(losses, 0.1, 1)
    return sum(last) / len(last)


def slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of value over step; None for fewer than 2 distinct steps."""
    if len({s for s, _ in points}) < 2:
        return None
    n = len(points)
    mx = sum(s for s, _ in points) / n
    my = sum(v for _, v in points) / n
    sxx = sum((s - mx) ** 2 for s, _ in points)
    return sum((s - mx) * (v - my) for s, v in points) / sxx


def eval_loss_slope(history: History, window: float, key: str = "eval_loss") -> float | None:
    return slope(tail(series(history, key), window, 2))


def reward_window(history: History, window: int, key: str = "reward") -> dict[str, float]:
    rewards = values(history, key)
    if not rewards:
        return {}
    n = max(1, min(window, math.ceil(0.1 * len(rewards))))
    first, last = rewards[:n], rewards[-n:]
    mean = sum(last) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in last) / n)
    return {
        "reward_mean_first": sum(first) / n,  # the same window at the start: did the reward move?
        "reward_mean_last": mean,
        "reward_std": std,
        "reward_max": max(rewards),
        "reward_window": float(n),
    }


def max_value(history: History, key: str) -> float | None:
    vals = values(history, key)
    return max(vals) if vals else None
