"""The logged history of a training run: the Trainer's `log_history`, kept as JSON next to
the adapter. Gates and plots are computed from it (never from values held in memory), so a
gate can be re-checked and a curve re-drawn from the files alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

History = list[dict[str, Any]]
FILE = "history.json"


def series(history: History, key: str) -> list[tuple[int, float]]:
    """(step, value) of every logged `key`, in order; non-numeric entries are skipped."""
    out = []
    for entry in history:
        value = entry.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out.append((int(entry.get("step", len(out))), float(value)))
    return out


def values(history: History, key: str) -> list[float]:
    return [v for _, v in series(history, key)]


def save(history: History, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in e.items()}
        for e in history
    ]
    path.write_text(json.dumps(clean, indent=1))
    return path


def load(path: Path) -> History:
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of log entries")
    return data
