"""The cross-language table (the roadmap's phase-4 comparison): one row per language, from the
eval metrics the registry holds, with the roadmap's flags.

Per language the row is its production adapter, else its most recently listed one (the registry
lists by name). Flags:
- `test_pass_rate` more than 15 % below the best language's (relative: < 0.85 x best);
- `tool_call_accuracy` below 95 %.
A figure the adapter's eval did not measure is shown as absent and flagged as such: absent is
not passing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from moa.api.adapter import Adapter

COLUMNS = (
    "test_pass_rate",
    "compile_pass_rate",
    "tool_call_accuracy",
    "hallucinated_api_rate",
    "median_iterations",
)
PASS_RATE_GAP = 0.15  # below the best by more than this share of it
MIN_TOOL_CALL_ACCURACY = 0.95


@dataclass(frozen=True)
class Row:
    language: str
    adapter: str
    stage: str
    metrics: dict[str, float]
    flags: list[str] = field(default_factory=list)


def pick(adapters: Iterable[Adapter]) -> dict[str, Adapter]:
    """Per language: its production adapter, else the last one listed."""
    chosen: dict[str, Adapter] = {}
    for a in adapters:
        stage = (a.status.stage if a.status else None) or a.spec.stage
        current = chosen.get(a.spec.language)
        current_stage = current and ((current.status.stage if current.status else None) or current.spec.stage)
        if current is None or stage == "production" or current_stage != "production":
            chosen[a.spec.language] = a
    return chosen


def compare(adapters: Iterable[Adapter]) -> list[Row]:
    rows = []
    for language, a in sorted(pick(adapters).items()):
        metrics = {k: a.status.metrics[k] for k in COLUMNS if a.status and k in a.status.metrics}
        stage = (a.status.stage if a.status else None) or a.spec.stage
        rows.append(Row(language, a.metadata.name or "", stage, metrics))
    rates = [r.metrics["test_pass_rate"] for r in rows if "test_pass_rate" in r.metrics]
    best = max(rates, default=None)
    for r in rows:
        rate = r.metrics.get("test_pass_rate")
        if rate is None:
            r.flags.append("test_pass_rate not measured")
        elif best and rate < (1 - PASS_RATE_GAP) * best:
            r.flags.append(f"test_pass_rate {rate:.3g} is {1 - rate / best:.0%} below the best ({best:.3g})")
        calls = r.metrics.get("tool_call_accuracy")
        if calls is None:
            r.flags.append("tool_call_accuracy not measured")
        elif calls < MIN_TOOL_CALL_ACCURACY:
            r.flags.append(f"tool_call_accuracy {calls:.3g} < {MIN_TOOL_CALL_ACCURACY}")
    return rows


def markdown(rows: list[Row]) -> str:
    head = ["language", "adapter", "stage", *COLUMNS, "flags"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"{r.metrics[k]:.3g}" if k in r.metrics else "absent" for k in COLUMNS]
        lines.append(
            "| " + " | ".join([r.language, r.adapter, r.stage, *cells, "; ".join(r.flags) or "-"]) + " |"
        )
    return "\n".join(lines) + "\n"
