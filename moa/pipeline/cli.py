"""`moa run` (one AdapterTraining, locally, end to end) and `moa registry`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import yaml
from rich.console import Console
from rich.live import Live
from rich.table import Table

from moa.api import before_after
from moa.api.gates import blocking
from moa.api.layout import Layout
from moa.api.stages import StageSummary, headline_metrics
from moa.api.training import load_training
from moa.pipeline.local import LocalRun
from moa.pipeline.planner import Plan
from moa.pipeline.registry import LocalRegistry, adapter_for, export

_ICON = {"Succeeded": "[green]✓[/]", "Running": "[yellow]▶[/]", "Failed": "[red]✗[/]", "Pending": "[dim]·[/]"}


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _table(current: Plan, run: LocalRun, started: float) -> Table:
    table = Table(
        title=f"moa run {run.name} ({run.training.spec.language}) — {_fmt_s(time.monotonic() - started)}"
    )
    for col in ("", "stage", "attempts", "elapsed", "eta", "detail"):
        table.add_column(col)
    for st in current.stages:
        procs = [p for p in run.running.values() if p.launch.stage == st.name]
        elapsed = max(((time.time() - p.started_at.timestamp()) for p in procs), default=None)
        expected = run.durations.get(st.name)
        eta = _fmt_s(max(0.0, expected - elapsed)) if expected and elapsed is not None else ""
        detail = _last_line(procs[0].log) if procs else (st.message.splitlines()[0] if st.message else "")
        table.add_row(
            _ICON.get(st.state, ""), st.name, str(st.attempts or ""), _fmt_s(elapsed), eta, detail[:70]
        )
    return table


def _last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].split("\r")[-1].strip() if lines else ""


def _summary(current: Plan, console: Console) -> None:
    table = Table(title="summary")
    for col in ("stage", "state", "attempts", "headline metrics"):
        table.add_column(col)
    for st in current.stages:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in headline_metrics(st.name, st.metrics).items())
        table.add_row(st.name, st.state, str(st.attempts), shown)
    console.print(table)
    failed = [g for st in current.stages for g in blocking(st.gates)]
    if failed:
        gates = Table(title="failed gates")
        for col in ("gate", "value", "op", "threshold"):
            gates.add_column(col)
        for g in failed:
            gates.add_row(
                g.name, "absent" if g.value is None else f"{g.value:.4g}", g.op, f"{g.threshold:.4g}"
            )
        console.print(gates)


def _before_after(current: Plan, console: Console) -> None:
    """The closing before/after table of the learning stages (eval wrote it to
    reports/{lang}/before_after.md from the same metrics)."""
    rows = before_after.rows({st.name: st.metrics for st in current.stages})
    if all(r.after is None for r in rows):
        return  # no learning stage got as far as measuring anything
    table = Table(title="before / after: base model (or the stage's start) vs adapter")
    for col in before_after.HEADER:
        table.add_column(col)
    for r in rows:
        table.add_row(*r.cells())
    console.print(table)


@click.command()
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Artifact root (default: spec.storage.root).",
)
@click.option("--rerun", multiple=True, help="Run this stage (and all after it) again even if it completed.")
@click.option("--plain", is_flag=True, help="Plain progress lines instead of the live view.")
def run(spec_file: Path, workdir: Path | None, rerun: tuple[str, ...], plain: bool) -> None:
    """Run one AdapterTraining locally, every stage in order; completed stages are skipped.

    Exit code 0 on success, 3 when a gate failed (the gate table is printed), 1 otherwise.
    """
    training = load_training(spec_file)
    if not training.metadata.name:
        training.metadata.name = training.spec.language
    root = workdir or Path(training.spec.storage.root)
    console = Console(stderr=False)
    local = LocalRun(training, root)
    local.rerun(rerun)
    started = time.monotonic()
    live_view = console.is_terminal and not plain
    seen: dict[str, str] = {}

    def report(current: Plan, r: LocalRun) -> None:
        if live_view:
            live.update(_table(current, r, started))
            return
        for st in current.stages:
            if seen.get(st.name) != st.state and not (st.state == "Pending" and st.name not in seen):
                seen[st.name] = st.state
                note = (
                    " (done earlier)" if st.state == "Succeeded" and st.attempts and not st.start_time else ""
                )
                console.print(
                    f"[{_fmt_s(time.monotonic() - started):>6}] {st.name}: {st.state}{note}", highlight=False
                )

    if live_view:
        with Live(console=console, refresh_per_second=4) as live:
            final = local.run(report)
            live.update(_table(final, local, started))
    else:
        final = local.run(report)
    _summary(final, console)
    layout = Layout(root, training.spec.language)
    _before_after(final, console)
    if final.phase == "Succeeded":
        evaluation = StageSummary.read(layout.metrics("eval"))
        adapter = adapter_for(training, evaluation.metrics, evaluation.gates, evaluation.published)
        path = LocalRegistry(root).save(adapter)
        console.print(f"[green]adapter {adapter.metadata.name}[/] → {root / adapter.spec.artifact}")
        console.print(f"registered in {path}; report: {layout.reports}")
        base = layout.base_model(training.spec.base_model)
        console.print(
            "load it: peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("
            f"'{base}'), '{root / adapter.spec.artifact}')"
        )
        console.print(
            f"list: moa registry list --workdir {root}   export: moa registry export --workdir {root}"
        )
        return
    reason = next((c.message for c in final.conditions if c.type == "Stalled" and c.status == "True"), "")
    if final.phase == "Failed":
        console.print(f"[red]failed:[/] {reason}")
        gate_failed = any(c.reason == "GateFailed" for c in final.conditions if c.type == "Stalled")
        console.print(f"logs: {local.state / 'logs'}   re-run a stage: moa run {spec_file} --rerun STAGE")
        sys.exit(3 if gate_failed else 1)
    waiting = next((c.message for c in final.conditions if c.type == "Reconciling"), final.phase)
    console.print(f"[yellow]not finished:[/] {waiting}")
    sys.exit(1)


@click.group()
def registry() -> None:
    """The adapter registry of local runs (`Adapter` resources stored as YAML)."""


_workdir = click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), help="Artifact root."
)


@registry.command("list")
@_workdir
def list_cmd(workdir: Path) -> None:
    """List adapters with their stage and headline eval metrics."""
    table = Table()
    for col in ("name", "language", "stage", "targets met", "metrics"):
        table.add_column(col)
    for a in LocalRegistry(workdir).list():
        status = a.status
        met = "yes" if status and status.gates and all(g.passed for g in status.gates) else "no"
        metrics = ", ".join(
            f"{k}={v:.3g}" for k, v in headline_metrics("eval", status.metrics if status else {}).items()
        )
        table.add_row(
            a.metadata.name, a.spec.language, (status.stage if status else None) or a.spec.stage, met, metrics
        )
    Console().print(table)


@registry.command("compare")
@_workdir
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table (Markdown).",
)
def compare_cmd(workdir: Path, output: Path | None) -> None:
    """The cross-language table over the registry's adapters, with the roadmap's flags (exit 3 when
    any language is flagged: > 15 % below the best test pass rate, tool-call accuracy < 95 %)."""
    from moa.pipeline.compare import compare, markdown

    rows = compare(LocalRegistry(workdir).list())
    if not rows:
        raise click.ClickException(f"no adapters in the registry under {workdir}: run `moa run` first")
    text = markdown(rows)
    click.echo(text, nl=False)
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}")
    if any(r.flags for r in rows):
        sys.exit(3)


@registry.command("export")
@_workdir
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None)
def export_cmd(workdir: Path, output: Path | None) -> None:
    """Render adapter_registry.yaml (stdout, or --output)."""
    text = yaml.safe_dump(export(LocalRegistry(workdir).list()), sort_keys=False)
    if output:
        output.write_text(text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@registry.command("promote")
@_workdir
@click.argument("name")
@click.option(
    "--to", "to", type=click.Choice(["trained", "evaluating", "production", "retired"]), default="production"
)
def promote_cmd(workdir: Path, name: str, to: str) -> None:
    """Move an adapter to a stage; production requires its eval targets to hold and first retires
    the language's production adapter (one user action: with GitOps, commit both edits together)."""
    adapter, retired = LocalRegistry(workdir).promote(name, to)  # type: ignore[arg-type]
    status = adapter.status
    if status is None or status.stage != to:
        blocked = next(
            (c.message for c in (status.conditions if status else []) if c.type == "PromotionBlocked"), ""
        )
        raise click.ClickException(f"promotion of {name} to {to} refused: {blocked}")
    for other in retired:
        click.echo(f"{other}: retired (was production for {adapter.spec.language})")
    click.echo(f"{name}: {to}")
