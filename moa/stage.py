"""The stage harness: the stage contract (DESIGN.md, "Stage contract") that all nine stage
commands share, so a stage module holds only its own work.

- `--config` (`config_option`, `stage_options`) loads the one StageConfig; `overrides` is the
  one place where a command-line flag replaces the spec's or the layout's setting.
- `already_done`: a completed output (its metrics.json) makes a re-run a no-op that leaves
  every file as it was; a failed run is run again.
- `StageDirs`: a run builds everything in `{output}.partial/` (checkpoints under
  `checkpoints/`, the result under `result/`), then renames `result/` to `{output}` and writes
  `metrics.json` there last. So a completed output always has its metrics.json; a killed run
  leaves `{output}.partial/` behind and the next run resumes from it; the previous stage's
  outputs are only ever read.
- `summarize` turns metrics and gates into the StageSummary; `exit_with` writes its compact
  form to the termination log, prints the outcome and exits 0, 3 (a gate failed) or 1.
- `Progress`: a bar on a terminal, plain lines otherwise (pod logs).

May import: `moa.api` only.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from moa.api.gates import GateResult, blocking
from moa.api.layout import METRICS
from moa.api.stages import StageName, StageSummary, SummaryStatus

log = logging.getLogger("moa.stage")

Echo = Callable[[str], Any]


def overrides(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a run: the spec's and the layout's `defaults`, where a flag `given` on
    the command line (not None) replaces one. The one place flags meet the spec, so `--config`
    alone reproduces a pod's run."""
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


_DONE_WORDS = {"succeeded": "passed", "gate_failed": "failed a gate", "failed": "failed"}


def already_done(
    stage: str,
    output: Path,
    echo: Echo | None = None,
    again_after: tuple[SummaryStatus, ...] = ("failed",),
) -> StageSummary | None:
    """The summary of a completed run at `output`, said in one line: re-running it is a no-op
    that rewrites nothing. None when the stage must run: no metrics.json yet, or one whose
    status is in `again_after` (a failed run is run again; the data gate also re-checks after
    a failed gate, since the data may have been fixed)."""
    metrics = output / METRICS
    if not metrics.is_file():
        return None
    done = StageSummary.read(metrics)
    if done.status in again_after:
        return None
    line = f"{stage} already complete at {output} (it already {_DONE_WORDS[done.status]}): done already, nothing to do"
    (echo or log.info)(line)
    return done


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
        return self.output


def summarize(
    stage: StageName,
    metrics: dict[str, float],
    gates: list[GateResult],
    message: str = "",
    notes: Sequence[str] = (),
) -> StageSummary:
    """`notes`: what a failed gate's message adds (where the malformed records are listed)."""
    failed = blocking(gates)
    for gate in gates:
        (log.info if gate.passed else log.warning)("gate %s", gate.describe())
    if failed and not message:
        message = "gate failed: " + "; ".join([*(g.describe() for g in failed), *filter(None, notes)])
    return StageSummary(
        stage=stage,
        status="gate_failed" if failed else "succeeded",
        metrics=metrics,
        gates=gates,
        message=message,
    )


def exit_with(summary: StageSummary, output: Path) -> NoReturn:
    """The end of every stage command, a fresh run or a no-op alike: the compact summary to the
    termination log (in a pod), the failing gates, then the outcome and the contract's exit
    code (0; 3 when a gate failed). A failed stage is an error whose one line is its message."""
    summary.write_termination_log()
    if summary.status == "failed":
        raise RuntimeError(f"{summary.stage} failed: {summary.message}")
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


def mirror_report(output: Path, reports: Path) -> None:
    """Copy a published stage's report.md and plots to reports/{lang}/{stage}/ (DESIGN's layout),
    where the other stages' reports are; the output folder keeps its own copy."""
    reports.mkdir(parents=True, exist_ok=True)
    if (output / "report.md").exists():
        shutil.copy2(output / "report.md", reports / "report.md")
    if (output / "plots").is_dir():
        shutil.copytree(output / "plots", reports / "plots", dirs_exist_ok=True)


def write_report(
    path: Path,
    language: str,
    backend: str,
    summary: StageSummary,
    samples: tuple[str, ...] = (),
    plots: Sequence[Path] = (),
) -> None:
    """report.md: the metrics, the gates, then each plot (linked relative to the report)."""
    ran = f"Backend: {backend}. " if backend else ""
    lines = [f"# {summary.stage} — {language}", "", f"{ran}Status: **{summary.status}**.", ""]
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
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{p.stem}]({p.relative_to(path.parent).as_posix()})" for p in plots]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def config_option(required: bool = True) -> Callable[[Any], Any]:
    """`--config STAGE.yaml`: the StageConfig every stage command takes (as `config_path`)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        required=required,
        help="StageConfig YAML (the AdapterTraining spec plus stage and artifact root).",
    )


class Progress:
    """Progress of a stage over `total` items (`done` of them from an earlier run): a bar on a
    terminal, a plain `[n/total] line` per item otherwise (pod logs)."""

    def __init__(self, stage: str, total: int, done: int, echo: Echo) -> None:
        self.stage, self.total, self.done, self.echo = stage, total, done, echo
        self.rich: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if sys.stderr.isatty():
            from rich.progress import Progress as Bar

            self.rich = Bar(transient=False)
            self.rich.start()
            self.task = self.rich.add_task(self.stage, total=self.total, completed=self.done)
        return self.tick

    def tick(self, line: str) -> None:
        self.done += 1
        if self.rich is not None:
            self.rich.update(self.task, completed=self.done)
            return
        self.echo(f"[{self.done}/{self.total}] {line}")

    def __exit__(self, *exc: object) -> None:
        if self.rich is not None:
            self.rich.stop()


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
    return config_option()(f)
