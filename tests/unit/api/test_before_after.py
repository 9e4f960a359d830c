"""The before/after table (eval writes it, `moa run` ends with it), built from the learning stages' metrics.json
files of a real `make demo` run (tests/unit/api/data/demo_metrics, copied from
runs/demo/checkpoints/adapters/python_*/metrics.json): every figure is the stage's own value,
a figure the stage did not measure is absent (never 0), and a skipped IPO says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.api import before_after
from moa.api.stages import StageSummary

DEMO_METRICS = Path(__file__).parent / "data" / "demo_metrics"


@pytest.fixture(scope="module")
def metrics() -> dict[str, dict[str, float]]:
    return {p.stem: StageSummary.read(p).metrics for p in sorted(DEMO_METRICS.glob("*.json"))}


def by_figure(rows: list[before_after.Row]) -> dict[tuple[str, str], before_after.Row]:
    return {(r.stage, r.figure): r for r in rows}


def test_every_figure_is_the_stages_own_value(metrics: dict[str, dict[str, float]]) -> None:
    rows = before_after.rows(metrics)
    assert len(rows) == len(before_after.FIGURES)
    for f, row in zip(before_after.FIGURES, rows, strict=True):
        stage = metrics[f.stage]
        assert row.after == stage.get(f.after)
        assert row.before == (stage.get(f.before) if f.before else None)
    sft = by_figure(rows)[("sft", "tool-call accuracy (held-out)")]
    assert sft.before == metrics["sft"]["base_tool_call_accuracy"]
    assert sft.change == pytest.approx(metrics["sft"]["tool_call_accuracy"] - sft.before)


def test_the_demo_run_learned(metrics: dict[str, dict[str, float]]) -> None:
    """What the demo is there to show, on the figures it recorded."""
    table = by_figure(before_after.rows(metrics))
    sft = table[("sft", "tool-call accuracy (held-out)")]
    assert sft.after is not None and sft.before is not None and sft.after > sft.before
    ipo = table[("ipo", "chosen - rejected margin")]
    assert ipo.before == pytest.approx(0.0, abs=1e-6)  # the policy starts as the SFT reference
    assert ipo.after is not None and ipo.after > 0
    calls = table[("eval", "tool-call accuracy")]
    assert calls.after is not None and calls.before is not None and calls.after > calls.before
    grpo = table[("grpo", "mean reward (first / last steps)")]
    assert grpo.after is not None and grpo.before is not None and grpo.after > grpo.before


def test_unmeasured_and_skipped_figures_are_absent(metrics: dict[str, dict[str, float]]) -> None:
    skipped = {**metrics, "ipo": {"pairs": 0.0, "skipped": 1.0}}
    del skipped["grpo"]
    table = by_figure(before_after.rows(skipped))
    ipo = table[("ipo", "chosen over rejected")]
    assert (ipo.before, ipo.after, ipo.cells()[2:4]) == (None, None, ("skipped", "absent"))
    grpo = table[("grpo", "mean reward (first / last steps)")]
    assert grpo.cells()[2:] == ("absent", "absent", "")
    tests = table[("eval", "test pass rate")]
    assert tests.cells()[2] == "adapter only"
    markdown = before_after.markdown(before_after.rows(skipped))
    assert markdown.count("\n") == len(before_after.FIGURES) + 2
