"""The stage contract for training stages (DESIGN.md, "Stage contract").

A run builds everything in `{output}.partial/` (checkpoints under `checkpoints/`, the result
under `result/`), then renames `result/` to `{output}` and writes `metrics.json` there last.
So: a completed output always has its metrics.json and re-running is a no-op; a killed run
leaves `{output}.partial/` behind and the next run resumes from its last checkpoint; the
previous stage's outputs are only ever read.
"""

from __future__ import annotations

import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from moa.api.gates import GateResult, blocking
from moa.api.layout import METRICS
from moa.api.stages import StageName, StageSummary

log = logging.getLogger("moa.trainer")


@dataclass(frozen=True)
class StageDirs:
    output: Path

    @property
    def work(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"

    @property
    def result(self) -> Path:
        return self.work / "result"

    def completed(self) -> StageSummary | None:
        metrics = self.output / METRICS
        return StageSummary.read(metrics) if metrics.exists() else None

    def already_done(self, stage: str) -> StageSummary | None:
        """The summary of a completed run (re-running a completed stage is a no-op), logged."""
        done = self.completed()
        if done is not None:
            log.info("%s already complete at %s (%s): nothing to do", stage, self.output, done.status)
        return done

    def last_checkpoint(self) -> Path | None:
        """The newest `checkpoint-N` that the Trainer finished writing (it has trainer_state.json)."""
        found = [p for p in self.checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
        return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)

    def publish(self, summary: StageSummary) -> Path:
        """result/ -> output/, then metrics.json; the checkpoints go once the output is complete."""
        if self.output.exists():  # a half-published output from a crash between rename and metrics
            shutil.rmtree(self.output)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.result.rename(self.output)
        summary.write(self.output / METRICS)
        shutil.rmtree(self.work, ignore_errors=True)
        summary.write_termination_log()
        return self.output


def summarize(
    stage: StageName, metrics: dict[str, float], gates: list[GateResult], message: str = ""
) -> StageSummary:
    failed = blocking(gates)
    for gate in gates:
        (log.info if gate.passed else log.warning)("gate %s", gate.describe())
    if failed and not message:
        message = "gate failed: " + "; ".join(g.describe() for g in failed)
    return StageSummary(
        stage=stage,
        status="gate_failed" if failed else "succeeded",
        metrics=metrics,
        gates=gates,
        message=message,
    )


def exit_with(summary: StageSummary, output: Path) -> None:
    """Print the outcome, failing gates first, and exit with the stage contract's code."""
    for gate in summary.gates:
        if not gate.passed:
            click.echo(f"gate failed: {gate.describe()}", err=True)
    click.echo(f"{summary.stage}: {summary.status} -> {output}")
    sys.exit(summary.exit_code)


def setup_logging() -> None:
    if not logging.getLogger("moa").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logging.getLogger("moa").addHandler(handler)
        logging.getLogger("moa").setLevel(logging.INFO)


def write_report(
    path: Path, language: str, backend: str, summary: StageSummary, samples: tuple[str, ...] = ()
) -> None:
    lines = [f"# {summary.stage} — {language}", "", f"Backend: {backend}. Status: **{summary.status}**.", ""]
    lines += ["| metric | value |", "|---|---|"] + [
        f"| {k} | {v:.4g} |" for k, v in sorted(summary.metrics.items())
    ]
    lines += ["", "| gate | value | op | threshold | passed |", "|---|---|---|---|---|"]
    for g in summary.gates:
        value = "absent" if g.value is None else f"{g.value:.4g}"
        lines.append(
            f"| {g.name} | {value} | {g.op} | {g.threshold:.4g} | {'yes' if g.passed else 'NO'} ({g.severity}) |"
        )
    if samples:
        lines += ["", "Sample completions on held-out tool-call prompts:", ""]
        lines += [f"```\n{s[:400]}\n```" for s in samples]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def stage_options(f):  # type: ignore[no-untyped-def]
    """--config plus the overrides every training stage takes."""
    f = click.option(
        "--max-steps", type=int, default=None, help="Stop after N optimizer steps (overrides epochs)."
    )(f)
    f = click.option(
        "--output",
        type=click.Path(path_type=Path),
        default=None,
        help="Output folder (default: the layout's).",
    )(f)
    f = click.option(
        "--data", type=click.Path(path_type=Path), default=None, help="Training data (default: the layout's)."
    )(f)
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=True,
        help="StageConfig YAML (the AdapterTraining spec plus stage and artifact root).",
    )(f)
    return f
