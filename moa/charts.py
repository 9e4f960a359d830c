"""Charts as PNG for the stages' reports: grouped bars and overlaid histograms.

Shared by the data stages (mutate, trajectories, preferences) and the trainers, which may not
import each other, so it imports nothing of moa. matplotlib (Agg backend: no display) is
imported only when a chart is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, ax: Any, path: Path, title: str) -> Path:
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    pyplot().close(fig)
    return path


def bars(path: Path, title: str, groups: Mapping[str, Mapping[str, float]], ylabel: str = "") -> Path | None:
    """One group of bars per key of `groups` (a source, a bug class), one bar per series in it
    (drawn, caught, verified); None when there is nothing to draw."""
    if not groups:
        return None
    series = list(dict.fromkeys(s for values in groups.values() for s in values))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(series)) ** 0.5), 4), dpi=100)
    width = 0.8 / len(series)
    for k, name in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(groups))]
        ax.bar(xs, [values.get(name, 0.0) for values in groups.values()], width, label=name)
    ax.set_xticks(range(len(groups)), list(groups), rotation=30 if len(groups) > 3 else 0, ha="right")
    ax.set_ylabel(ylabel)
    return save(fig, ax, path, title)


def histograms(
    path: Path, title: str, series: Mapping[str, Sequence[float]], xlabel: str, integer: bool = False
) -> Path | None:
    """The distribution of each named series, overlaid (`integer`: one bin per whole number, as
    for counts of turns or calls); None when every series is empty."""
    series = {k: v for k, v in series.items() if v}
    if not series:
        return None
    values = [x for v in series.values() for x in v]
    low, high = min(values), max(values)
    if integer:
        bins: Any = [b - 0.5 for b in range(int(low), int(high) + 2)]
    else:
        bins = 20 if high > low else 1
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, v in series.items():
        ax.hist(list(v), bins=bins, alpha=0.6 if len(series) > 1 else 0.9, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return save(fig, ax, path, title)
