"""`moa datagen mutate`: caught mutations (fixed -> buggy pairs) from real sources.

Per source: fetch (the fetch stage, or first here on one machine; see fetch.py) -> runner.prepare
offline -> baseline x2 (green required, flaky tests found and excluded) -> runner.run (sandboxed, no network) -> dedup -> caps -> verification
(each kept pair re-checked by applying its diff to the clean tree) -> mutations.jsonl + stats.json.
The stage's metrics.json is written last.

Resumable at two levels: a source with stats.json is done and skipped; inside a source, the tool's
records (`run.cache`) and every verification verdict (`verify.cache`, appended as they happen) are
kept in the scratch folder, so a killed run picks up where it stopped. Scratch lives under
~/.cache/moa/scratch, not in the output, because readers glob the output for *.jsonl.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, get_args

import click

from moa import charts
from moa.api.layout import METRICS
from moa.api.records import SUITE_FAILURE, MutationRecord, SourceRef
from moa.api.stages import StageConfig, StageSummary
from moa.api.training import DEVELOPER_BUG_CLASSES, BugClass
from moa.datagen import fetch
from moa.datagen.dedup import diff_hash
from moa.datagen.diffcheck import DiffChecker
from moa.datagen.verify import Verdict, apply_verdict, find_flaky, recover, verify
from moa.languages import registry
from moa.languages.base import MutationRunner
from moa.languages.sampling import stratified
from moa.languages.tools import RunnerBase, mutant_timeout
from moa.stage import already_done, config_option, exit_with, write_report

RECORDS = "mutations.jsonl"
STATS = "stats.json"
STATUSES = ("caught", "missed", "timeout", "unviable")


@dataclass
class MutateConfig:
    """Everything one mutate run needs (the CLI flags, or a StageConfig's data section)."""

    language: str
    output: Path
    max_mutations: int | None = 500  # kept (verified) pairs per source
    max_per_function: int = 10
    max_per_operator: int = 100  # per bug class (record.operator_class)
    oversample: float = 3.0  # mutants run per wanted pair, when the tool can run a subset
    jobs: int = 1  # sources in parallel
    verify: bool = True
    baseline_runs: int = 2
    test_timeout_s: float = 300.0  # one run of the test suite
    source_timeout_s: float = 14400.0  # the mutation tool on one source
    metrics_path: Path | None = None  # default: output/metrics.json
    reports: Path | None = None  # report.md and plots; default: output/reports
    # The fetch stage downloaded everything already (a pod with no network): never fetch here.
    # Otherwise (the CLI on one machine) each source is fetched first; either way the runs
    # themselves are offline.
    offline: bool = False
    # None: every bug class; else the mix to draw from (MutationSpec.operator_classes).
    operator_classes: tuple[str, ...] | None = tuple(DEVELOPER_BUG_CLASSES)
    seed: int = 0
    min_green_tests: int = 5


def scratch_dir(cfg: MutateConfig, ref: SourceRef) -> Path:
    return fetch.scratch_dir(cfg.language, cfg.output, ref)


def log(ref: SourceRef | str, msg: str) -> None:
    click.echo(f"[mutate] {ref}: {msg}", err=True)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk mid-write leaves no temporary behind
        raise


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a crash: that verdict is simply redone
            continue
    return out


def dedup(records: Iterable[MutationRecord]) -> tuple[list[MutationRecord], int]:
    """Records with a diff_hash, first of each hash kept; and how many duplicates were dropped."""
    seen: set[str] = set()
    out, dups = [], 0
    for rec in records:
        h = rec.diff_hash or diff_hash(rec.diff)
        if h in seen:
            dups += 1
            continue
        seen.add(h)
        out.append(rec if rec.diff_hash else rec.model_copy(update={"diff_hash": h}))
    return out, dups


class Caps:
    """Per-function, per-operator-class and per-source limits on kept pairs."""

    def __init__(self, cfg: MutateConfig) -> None:
        self.cfg = cfg
        self.functions: Counter[str] = Counter()
        self.operators: Counter[str] = Counter()
        self.kept = 0

    def blocked(self, rec: MutationRecord) -> str | None:
        if self.cfg.max_mutations is not None and self.kept >= self.cfg.max_mutations:
            return "cap_source"
        if self.functions[f"{rec.file}:{rec.function}"] >= self.cfg.max_per_function:
            return "cap_function"
        if self.operators[operator_class(rec)] >= self.cfg.max_per_operator:
            return "cap_operator"
        return None

    def take(self, rec: MutationRecord) -> None:
        self.functions[f"{rec.file}:{rec.function}"] += 1
        self.operators[operator_class(rec)] += 1
        self.kept += 1


def operator_class(rec: MutationRecord) -> str:
    """The record's bug class; records written before plugins mapped them: the label's prefix."""
    return rec.operator_class or rec.operator.split(":")[0]


def mutate_source(cfg: MutateConfig, ref: SourceRef) -> dict[str, Any]:
    """One source end to end; returns its stats (also written as stats.json, last)."""
    out_dir = cfg.output / ref.slug
    if (out_dir / STATS).is_file():
        done: dict[str, Any] = json.loads((out_dir / STATS).read_text())
        log(ref, f"done already ({done.get('status')}), skipped")
        return {**done, "resumed": True}
    start = time.monotonic()
    secs: dict[str, float] = {}
    plugin = registry.get(cfg.language)
    if plugin.mutation_runner is None:
        raise RuntimeError(f"language {cfg.language} has no mutation runner yet")
    runner: MutationRunner = plugin.mutation_runner()
    if isinstance(runner, RunnerBase):  # the runners that draw mutants (moa.languages.sampling)
        runner.operator_classes, runner.seed = cfg.operator_classes, cfg.seed
    work = scratch_dir(cfg, ref)
    repo = work / "repo"

    t = time.monotonic()
    if cfg.offline and not fetch.is_fetched(work):
        raise fetch.NotFetched(f"{ref} was not fetched: the fetch stage (`moa datagen fetch`) runs first")
    if not cfg.offline:
        fetch.fetch_source(cfg.language, cfg.output, ref)
    secs["fetch"] = time.monotonic() - t
    log(ref, f"fetched -> {repo}")

    journal = work / "applied.diff"
    recover(repo, journal)
    t = time.monotonic()
    runner.ensure_tool()
    runner.prepare(repo)
    secs["prepare"] = time.monotonic() - t
    log(ref, f"prepared in {secs['prepare']:.0f}s")

    base = find_flaky(runner, repo, cfg.test_timeout_s, cfg.baseline_runs, cfg.min_green_tests)
    secs["baseline"] = base.seconds
    stats: dict[str, Any] = {
        "source": str(ref),
        "language": cfg.language,
        "tool": runner.tool,
        "flaky_tests": base.flaky,
        "deselected_tests": base.red,
        "green_tests": base.green_tests,
    }
    if not base.green:
        log(ref, f"skipped: {base.reason[:300]}")
        stats.update(
            status="skipped",
            reason=base.reason,
            skip_kind=base.kind,
            seconds={**secs, "total": time.monotonic() - start},
        )
        _write_atomic(out_dir / STATS, json.dumps(stats, indent=1))
        shutil.rmtree(work, ignore_errors=True)
        return stats
    log(
        ref,
        f"baseline green x{base.runs}"
        + (f", flaky excluded: {', '.join(base.flaky)}" if base.flaky else "")
        + (f", red deselected: {', '.join(base.red)}" if base.red else ""),
    )

    t = time.monotonic()
    # The tool's run, kept for a killed run's re-run: its records, and the mutants the runner
    # could not make right (counted while it ran; without them a resumed run's stats differ).
    cache, rejected_cache = work / "run.cache", work / "rejected.json"
    if cache.is_file():
        records = [MutationRecord.model_validate(r) for r in _read_lines(cache)]
        rejected = json.loads(rejected_cache.read_text()) if rejected_cache.is_file() else {}
        log(ref, f"{len(records)} mutants from the cached tool run")
    else:
        budget = None if cfg.max_mutations is None else max(1, int(cfg.max_mutations * cfg.oversample))
        kwargs = {"exclude_tests": base.excluded} if base.excluded else {}
        records = runner.run(repo, ref, budget, cfg.source_timeout_s, **kwargs)
        rejected = dict(getattr(runner, "rejected", {}))
        _write_atomic(rejected_cache, json.dumps(rejected))  # first: the cache marks the run done
        _write_atomic(cache, "".join(r.model_dump_json() + "\n" for r in records))
    secs["run"] = time.monotonic() - t
    counts: Counter[str] = Counter(r.status for r in records)
    log(ref, f"{runner.tool}: {len(records)} mutants, " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))

    dropped: Counter[str] = Counter(rejected)
    checker = DiffChecker(repo, plugin.functions)
    scoped = plugin.functions is not None
    checked = []
    for rec in records:
        if rec.status != "caught":
            continue
        if cfg.operator_classes is not None and operator_class(rec) not in cfg.operator_classes:
            dropped["operator_excluded"] += 1  # a runner that could not leave them out
            continue
        problem = checker.problem(rec)
        if problem:
            dropped[problem] += 1
        else:
            checked.append(rec.model_copy(update={"function_scoped": scoped}))
    caught, dups = dedup(checked)
    # Runners return records in file order; the caps below keep the first ones, so order them as
    # the draw did (seeded, round-robin over files, functions, bug classes) for the cut to spread.
    caught = stratified(caught, None, cfg.seed, lambda r: (r.file, r.function or "", operator_class(r)))
    dropped.update({"duplicate": dups} if dups else {})
    # A mutant's suite may take a small multiple of the green baseline, not the whole test budget.
    per_mutant_s = mutant_timeout(getattr(runner, "baseline_s", None), cfg.test_timeout_s)
    caps = Caps(cfg)
    verdicts = {v["diff_hash"]: v for v in _read_lines(work / "verify.cache")}
    kept: list[MutationRecord] = []
    t = time.monotonic()
    reused = 0
    with (work / "verify.cache").open("a") as vcache:
        for i, rec in enumerate(caught, 1):
            reason = caps.blocked(rec)
            if reason:
                dropped[reason] += 1
                continue
            if cfg.verify:
                cached = verdicts.get(rec.diff_hash)
                if cached is not None:
                    reused += 1
                    v = _verdict(cached)
                else:
                    v = verify(runner, repo, rec, base.excluded, per_mutant_s, journal)
                    vcache.write(json.dumps({"diff_hash": rec.diff_hash, **asdict(v)}) + "\n")
                    vcache.flush()
                if not v.kept:
                    dropped[v.reason] += 1
                    continue
                rec = apply_verdict(rec, v)
            caps.take(rec)
            kept.append(rec)
            if i % 10 == 0:
                log(ref, f"verified {i}/{len(caught)} caught, kept {len(kept)}")
    secs["verify"] = time.monotonic() - t

    _write_atomic(out_dir / RECORDS, "".join(r.model_dump_json() + "\n" for r in kept))
    total = len(records)
    secs["total"] = time.monotonic() - start
    stats.update(
        status="done",
        counts={s: counts[s] for s in STATUSES},
        total=total,
        kept=len(kept),
        verified=sum(r.verified for r in kept),
        naming_a_test=sum(any(t.name != SUITE_FAILURE for t in r.failing_tests) for r in kept),
        function_scoped=sum(r.function_scoped for r in kept),
        dropped=dict(dropped),
        operators=dict(Counter(operator_class(r) for r in kept)),
        drawn_by_class=dict(Counter(operator_class(r) for r in records)),
        caught_by_class=dict(Counter(operator_class(r) for r in records if r.status == "caught")),
        **{"yield": round(counts["caught"] / total, 4) if total else None},
        mutants_per_minute=round(total / (secs["run"] / 60), 2) if secs["run"] > 0 and total else None,
        seconds={k: round(v, 2) for k, v in secs.items()},
    )
    _write_atomic(out_dir / STATS, json.dumps(stats, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    log(
        ref,
        f"kept {len(kept)} of {counts['caught']} caught ({dict(dropped) or 'nothing dropped'}) in {secs['total']:.0f}s"
        + (f"; {reused} verdicts reused from a killed run" if reused else ""),
    )
    return stats


def _verdict(row: dict[str, Any]) -> Verdict:
    return Verdict(**{k: row[k] for k in ("kept", "reason", "failing", "excerpt", "seconds")})


def _safe(cfg: MutateConfig, ref: SourceRef) -> dict[str, Any]:
    """mutate_source, with a failure turned into a stats row (one source must not sink the others)."""
    try:
        return mutate_source(cfg, ref)
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(str(ref)) else str(exc)
        log(ref, f"FAILED: {msg[:500]}")
        return {"source": str(ref), "language": cfg.language, "status": "failed", "reason": msg}


def aggregate(rows: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """Stage metrics, computed from the sources' stats."""
    m: Counter[str] = Counter()
    run_s = 0.0
    for row in rows:
        m[f"sources_{row['status']}"] += 1
        if row.get("skip_kind"):
            m[f"sources_skipped_{row['skip_kind']}"] += 1
        m["deselected_tests"] += len(row.get("deselected_tests") or ())
        for status, n in row.get("counts", {}).items():
            m[status] += n
        for reason, n in row.get("dropped", {}).items():
            m[f"dropped_{reason}"] += n
        m["total"] += row.get("total", 0)
        m["kept"] += row.get("kept", 0)
        for key in ("verified", "naming_a_test", "function_scoped"):
            m[key] += row.get(key, 0)
        run_s += row.get("seconds", {}).get("run", 0.0)
    metrics: dict[str, float] = {k: float(v) for k, v in m.items()}
    metrics["sources"] = float(len(rows))
    if m["total"]:
        metrics["yield"] = round(m["caught"] / m["total"], 4)
    if run_s > 0 and m["total"]:
        metrics["mutants_per_minute"] = round(m["total"] / (run_s / 60), 2)
    metrics["seconds"] = round(seconds, 2)
    return metrics


def brief(reason: str, head: int = 160, tail: int = 400) -> str:
    """A failure reason short enough for the status: its start (what failed) and its end (a
    tool's last output lines, where the cause usually is)."""
    if len(reason) <= head + tail:
        return reason
    return f"{reason[:head]} ... {reason[-tail:]}"


def run_stage(cfg: MutateConfig, refs: list[SourceRef]) -> StageSummary:
    start = time.monotonic()
    with fetch.toolchain_env(cfg.language, offline=True):
        if cfg.jobs > 1 and len(refs) > 1:
            with ProcessPoolExecutor(max_workers=cfg.jobs) as pool:
                rows = list(pool.map(_safe, [cfg] * len(refs), refs))
        else:
            rows = [_safe(cfg, ref) for ref in refs]
    metrics = aggregate(rows, time.monotonic() - start)
    failed = [r for r in rows if r["status"] == "failed"]
    summary = StageSummary(
        stage="mutate",
        status="failed" if failed else "succeeded",
        metrics=metrics,
        message="; ".join(f"{r['source']}: {brief(r['reason'])}" for r in failed)[:1500],
    )
    reports = cfg.reports or cfg.output / "reports"
    write_report(reports / "report.md", cfg.language, "", summary, plots=yield_plots(rows, reports / "plots"))
    summary.write(cfg.metrics_path or cfg.output / METRICS)
    print_table(rows, metrics)
    return summary


def yield_plots(rows: list[dict[str, Any]], folder: Path) -> list[Path]:
    """What each source and each bug class yielded: mutants drawn, caught, and kept (verified)."""
    by_source = {
        SourceRef.parse(r["source"]).name: {
            "drawn": r.get("total", 0),
            "caught": r.get("counts", {}).get("caught", 0),
            "verified": r.get("verified", 0),
        }
        for r in rows
        if r.get("status") == "done"
    }
    by_class: dict[str, dict[str, float]] = {}
    for r in rows:
        for series, key in (("drawn", "drawn_by_class"), ("caught", "caught_by_class"), ("verified", "operators")):  # fmt: skip
            for cls, n in (r.get(key) or {}).items():
                by_class.setdefault(cls, {}).setdefault(series, 0)
                by_class[cls][series] += n
    plots = [
        charts.bars(folder / "yield_by_source.png", "Mutants per source", by_source, "mutants"),
        charts.bars(folder / "yield_by_class.png", "Mutants per bug class", by_class, "mutants"),
    ]
    return [p for p in plots if p is not None]


def print_table(rows: list[dict[str, Any]], metrics: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mutate: {int(metrics.get('kept', 0))} pairs kept from {len(rows)} source(s)")
    columns = ("source", "status", "drawn", *STATUSES, "verified", "named", "dropped", "mut/min", "seconds")
    for col in columns:
        table.add_column(col, justify="left" if col in ("source", "status", "dropped") else "right")
    for r in rows:
        c = r.get("counts", {})
        kept = r.get("kept", 0)
        table.add_row(
            r["source"],
            r["status"] + (f" ({r['reason'][:40]})" if r["status"] != "done" else ""),
            str(r.get("total", "")),
            *(str(c.get(s, "")) for s in STATUSES),
            str(r.get("verified", "")),
            f"{r.get('naming_a_test', 0) / kept:.0%}" if kept else "",
            ", ".join(f"{k} {v}" for k, v in sorted(r.get("dropped", {}).items())),
            f"{r['mutants_per_minute']:.1f}" if r.get("mutants_per_minute") else "",
            f"{r.get('seconds', {}).get('total', 0):.0f}",
        )
    Console(file=sys.stderr, width=160).print(table)


def from_stage_config(stage: StageConfig, texts: list[str]) -> tuple[MutateConfig, list[str]]:
    """The run a StageConfig asks for: its shard (one source, a pod), else the listed or spec's sources.

    Output goes to data/{lang}/mutations/; a shard's metrics.json goes in its own folder (the
    stage folder of that shard), a whole run's in data/{lang}/mutations/."""
    limits, mutation = stage.spec.data.limits, stage.spec.data.mutation
    cfg = MutateConfig(
        language=stage.spec.language,
        output=stage.layout.mutations,
        max_mutations=limits.max_mutations_per_source,
        jobs=limits.jobs,
        test_timeout_s=float(limits.timeouts.test_seconds),
        source_timeout_s=float(limits.timeouts.source_seconds),
        offline=True,
        operator_classes=tuple(mutation.operator_classes),
        seed=mutation.seed,
        min_green_tests=mutation.min_green_tests,
    )
    cfg.reports = stage.layout.reports / "mutate"
    if stage.shard:  # shards run side by side: each reports in its own folder
        cfg.metrics_path = stage.output_dir / METRICS
        cfg.reports = cfg.reports / SourceRef.parse(stage.shard).slug
        return cfg, [stage.shard]
    return cfg, texts or list(stage.spec.data.sources)


def _read_sources(path: Path) -> list[str]:
    lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    return [ln for ln in lines if ln]


@click.command("mutate")
@config_option(required=False)
@click.option("--language", "-l", help="Language plugin (`moa languages` lists them).")
@click.option("--source", "sources", multiple=True, help="REGISTRY:NAME@VERSION, git:URL#REV or path:DIR.")
@click.option(
    "--sources",
    "sources_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of sources, one per line (# comments).",
)
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--max-mutations", type=int, default=500, show_default=True, help="Kept pairs per source.")
@click.option("--max-per-function", type=int, default=10, show_default=True)
@click.option(
    "--max-per-operator", type=int, default=100, show_default=True, help="Kept pairs per bug class."
)
@click.option(
    "--operator-class",
    "operator_classes",
    multiple=True,
    type=click.Choice(get_args(BugClass)),
    help="Bug classes to draw mutants from (repeat). Default: developer bugs.",
)
@click.option("--all-operators", is_flag=True, help="Draw from every bug class (sentinels and stubs too).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the stratified draw.")
@click.option(
    "--min-green-tests",
    type=int,
    default=5,
    show_default=True,
    help="Tests that must stay green after deselecting those red at baseline.",
)
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Sources in parallel (processes).")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Re-check every caught pair.")
@click.option(
    "--timeout", type=float, default=300.0, show_default=True, help="Seconds for one test-suite run."
)
@click.option(
    "--source-timeout",
    type=float,
    default=14400.0,
    show_default=True,
    help="Seconds for the tool on one source.",
)
def mutate_cmd(
    config_path: Path | None,
    language: str | None,
    sources: tuple[str, ...],
    sources_file: Path | None,
    output: Path | None,
    max_mutations: int,
    max_per_function: int,
    max_per_operator: int,
    operator_classes: tuple[str, ...],
    all_operators: bool,
    seed: int,
    min_green_tests: int,
    jobs: int,
    verify: bool,
    timeout: float,
    source_timeout: float,
) -> None:
    """Run the language's mutation tool on sources and keep verified caught mutations."""
    texts = list(sources) + (_read_sources(sources_file) if sources_file else [])
    if config_path:
        cfg, texts = from_stage_config(StageConfig.load(config_path), texts)
    elif language and output is not None:
        cfg = MutateConfig(
            language=language,
            output=output,
            max_mutations=max_mutations,
            max_per_function=max_per_function,
            max_per_operator=max_per_operator,
            operator_classes=None if all_operators else operator_classes or tuple(DEVELOPER_BUG_CLASSES),
            seed=seed,
            min_green_tests=min_green_tests,
            jobs=jobs,
            verify=verify,
            test_timeout_s=timeout,
            source_timeout_s=source_timeout,
        )
    else:
        raise click.UsageError("give --config STAGE.yaml, or --language and --output")
    metrics = cfg.metrics_path or cfg.output / METRICS
    done = already_done("mutate", metrics.parent, lambda line: click.echo(line, err=True))
    if done is not None:
        exit_with(done, cfg.output)
    plugin = registry.get(cfg.language)
    if not texts:
        texts = [str(s.ref) for s in plugin.default_sources if s.ships_tests]
    if not texts:
        raise click.UsageError(f"no sources: give --source/--sources ({cfg.language} has no default sources)")
    refs = [SourceRef.parse(t) for t in texts]
    exit_with(run_stage(cfg, refs), cfg.output)
