"""The before/after table of a training: what each learning stage started from and where it
got, read from the stages' own metrics (nothing here measures or estimates anything). The eval
stage writes it as reports/{lang}/before_after.md (so a run in pods has it too), and `moa run`
ends by printing it.

- SFT: held-out tool-call format accuracy of the base model (adapter off) and of the adapter.
- IPO: chosen-over-rejected share and mean margin of the implicit reward on the pairs, at the
  start (policy = SFT reference, so 0 unless the reference is wrong) and after training.
- GRPO: mean reward over the first and over the last steps of its gate window.
- eval: each figure measured for both the base model and the final adapter; figures measured
  only for the adapter (the agent tasks) have no "before".

A figure the stage did not measure is shown as absent, never as zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    stage: str
    name: str
    before: str | None  # the metric holding the "before" value; None: measured for the adapter only
    after: str


FIGURES: tuple[Figure, ...] = (
    Figure("sft", "tool-call accuracy (held-out)", "base_tool_call_accuracy", "tool_call_accuracy"),
    Figure("ipo", "chosen over rejected", "chosen_over_rejected_start", "chosen_over_rejected"),
    Figure("ipo", "chosen - rejected margin", "eval_margin_start", "eval_margin"),
    Figure("grpo", "mean reward (first / last steps)", "reward_mean_first", "reward_mean_last"),
    Figure("eval", "tool-call accuracy", "base_tool_call_accuracy", "tool_call_accuracy"),
    Figure("eval", "HumanEval pass@1", "base_humaneval_pass_at_1", "humaneval_pass_at_1"),
    Figure("eval", "MMLU accuracy", "base_mmlu_accuracy", "mmlu_accuracy"),
    Figure("eval", "compile pass rate", None, "compile_pass_rate"),
    Figure("eval", "test pass rate", None, "test_pass_rate"),
)
HEADER = ("stage", "figure", "before", "after", "change")
STAGES = tuple(dict.fromkeys(f.stage for f in FIGURES))  # the stages whose metrics it reads
FILE = "before_after.md"  # under reports/{lang}/


@dataclass(frozen=True)
class Row:
    stage: str
    figure: str
    before: float | None
    after: float | None
    note: str = ""  # why a figure is missing (a skipped stage, a base not measured)

    @property
    def change(self) -> float | None:
        return None if self.before is None or self.after is None else self.after - self.before

    def cells(self) -> tuple[str, ...]:
        before = self.note if self.before is None and self.note else _fmt(self.before)
        change = self.change
        return (
            self.stage,
            self.figure,
            before,
            _fmt(self.after),
            "" if change is None else f"{change:+.3g}",
        )


def _fmt(value: float | None) -> str:
    return "absent" if value is None else f"{value:.3g}"


def rows(metrics: Mapping[str, Mapping[str, float]]) -> list[Row]:
    """One row per figure, from each stage's metrics (`metrics[stage][name]`)."""
    out = []
    for f in FIGURES:
        stage = metrics.get(f.stage, {})
        note = "skipped" if stage.get("skipped") else ("adapter only" if f.before is None else "")
        before = stage.get(f.before) if f.before else None
        out.append(Row(f.stage, f.name, before, stage.get(f.after), note))
    return out


def markdown(table: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in table]
    return "\n".join(lines) + "\n"


def write(path: Path, metrics: Mapping[str, Mapping[str, float]]) -> list[Row]:
    """The table as markdown at `path`; the rows, for a caller that also shows them."""
    table = rows(metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(table))
    return table
