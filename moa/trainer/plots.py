"""Training curves as PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from moa import charts
from moa.trainer.history import History, series


def plot(history: History, keys: list[str], path: Path, title: str, ylabel: str = "") -> Path | None:
    """One figure with a line per logged key that has points; None when none has any."""
    curves = {k: series(history, k) for k in keys}
    curves = {k: pts for k, pts in curves.items() if pts}
    if not curves:
        return None
    plt = charts.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key, pts in curves.items():
        steps, vals = zip(*pts, strict=True)
        ax.plot(steps, vals, marker="." if len(pts) < 50 else None, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    return charts.save(fig, ax, path, title)
