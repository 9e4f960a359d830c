"""`moa datagen trajectories`: caught mutations -> Harmony agent trajectories and GRPO tasks.

For each caught mutation a teacher works in a fresh workspace (the source with the bug
applied) through the real executor; an episode is kept only if the tests end green and the
Harmony text validates. Outputs, under the artifact root:

    data/{lang}/core_agent/train/trajectories.jsonl   SFT data
    data/{lang}/core_agent/eval/trajectories.jsonl    SFT eval loss (other packages only)
    data/{lang}/grpo/tasks/tasks.jsonl                held-aside tasks for GRPO
    data/{lang}/core_agent/metrics.json               written last

The split is by *package*, never by record: mutants of one package share code, so a record
split would leak the eval set into training (two versions of a package count as one). GRPO
tasks are a seeded fraction of the training packages' records that get no trajectory.

Resumable: every finished episode (kept or dropped) is appended to `.progress.jsonl` as it
completes; a re-run skips those and only the final files are written by rename. Malformed
mutation records are reported as `file:line: reason` and skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from moa import charts
from moa import harmony as h
from moa.agent.executor import Caps, Executor
from moa.agent.tasks import Bug, bug_fields, bug_layout, grpo_task, prompt_messages, repository_layout
from moa.agent.workspace import RepoState, Workspace, WorkspaceError, prepared_tree
from moa.api import bad_records
from moa.api.layout import METRICS
from moa.api.records import MutationRecord, SourceRef
from moa.api.stages import StageConfig, StageSummary
from moa.api.training import AdapterTrainingSpec
from moa.datagen.dedup import diff_hash
from moa.datagen.teachers import Teacher, make_teacher
from moa.stage import Progress, already_done, config_option, exit_with, overrides, write_report

PROGRESS = ".progress.jsonl"
FILE = "trajectories.jsonl"


# ------------------------------------------------------------------------------ reading records


@dataclass
class Loaded:
    records: list[MutationRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "file:line: reason"
    lines: int = 0


def read_mutations(folder: Path) -> Loaded:
    """Every record of every `*.jsonl` under `folder`; bad lines become errors, not crashes."""
    loaded = Loaded()
    files = sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:  # a folder named *.jsonl, no permission
            loaded.errors.append(f"{path}: unreadable ({exc.strerror or exc})")
            continue
        for n, line in enumerate(text.split("\n"), 1):  # "\n" only: line numbers as editors count
            if not line.strip():
                continue
            loaded.lines += 1
            try:
                loaded.records.append(MutationRecord.model_validate_json(line))
            except ValidationError as exc:
                reasons = [
                    "not valid JSON"
                    if err["type"] == "json_invalid"
                    else f"{'.'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}"
                    for err in exc.errors()
                ]
                loaded.errors.append(f"{path}:{n}: {'; '.join(reasons)}")
    return loaded


def record_id(record: MutationRecord) -> str:
    return hashlib.sha256(f"{record.source}\0{record.file}\0{record.diff}".encode()).hexdigest()[:16]


def package_of(source: str) -> str:
    """The split unit: a package across its versions (`pypi:attrs`)."""
    ref = SourceRef.parse(source)
    return f"{ref.registry}:{ref.name}"


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()


def eval_packages(packages: Iterable[str], fraction: float, seed: int) -> set[str]:
    """A seeded share of the packages for eval: at least one when there are two or more and
    the fraction is not zero, never all of them."""
    ordered = sorted(set(packages), key=lambda p: _rank(seed, p))
    if len(ordered) < 2 or fraction <= 0:
        return set()
    n = min(len(ordered) - 1, max(1, round(len(ordered) * fraction)))
    return set(ordered[:n])


# ------------------------------------------------------------------------------ writing


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write atomically (temporary name, then rename); returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    n = 0
    try:
        with tmp.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk mid-write leaves no temporary behind
        raise
    return n


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file, skipping a torn last line (a crash mid-append)."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


# ------------------------------------------------------------------------------ one episode


@dataclass
class Options:
    language: str
    mutations: Path
    output: Path
    grpo_output: Path
    teacher: Teacher
    teacher_name: str
    limit: int | None = None
    seed: int = 42
    eval_fraction: float = 0.05
    grpo_fraction: float = 0.1
    jobs: int = 2
    test_timeout_s: float = 300.0
    curriculum: tuple[int, ...] = (4096, 8192, 16384, 32768)
    reports: Path | None = None  # report.md and plots; default: output/reports


def conversation_row(messages: list[h.Message]) -> list[dict[str, Any]]:
    return [{k: v for k, v in asdict(m).items() if v is not None} for m in messages]


def run_episode(task: Bug, split: str, opts: Options) -> dict[str, Any]:
    """One task: a progress row, with the trajectory when it is kept."""
    started = time.monotonic()
    rng = random.Random(f"{opts.seed}:{task.id}")
    base = {"id": task.id, "split": split}
    try:
        with Workspace.create(RepoState(opts.language, task.record.source, task.record.diff)) as ws:
            executor = Executor(ws, caps=Caps(test_timeout_s=opts.test_timeout_s))
            layout = repository_layout(ws.root, ws.state)
            prompt = prompt_messages(task, variant=rng.randrange(1000), layout=layout)
            episode = opts.teacher.demonstrate(task, prompt, executor, rng)
    except WorkspaceError as exc:  # the task's own fault (its diff does not apply): dropped
        return {**base, "kept": False, "reason": f"{type(exc).__name__}: {exc}"}
    except (OSError, RuntimeError, ValueError) as exc:  # the environment's: not recorded, retried
        return {**base, "kept": False, "error": True, "reason": f"{type(exc).__name__}: {exc}"}
    if not episode.passed:
        return {**base, "kept": False, "reason": episode.reason or "the tests did not end green"}
    conversation = h.Conversation((*prompt, *episode.messages), "training")
    problems = h.validate(conversation)
    if problems:
        return {**base, "kept": False, "reason": f"invalid Harmony: {problems[0]}"}
    r = task.record
    return {
        **base,
        "kept": True,
        "trajectory": {
            **bug_fields(task),
            "diff_hash": diff_hash(r.diff),
            "teacher": opts.teacher_name,
            "text": h.render(conversation, "training"),
            "messages": conversation_row(list(conversation.messages)),
            "n_tool_calls": episode.n_tool_calls,
            "turns": episode.turns,
            "invalid_calls": executor.invalid_calls,
            "seconds": round(time.monotonic() - started, 2),
        },
    }


# ------------------------------------------------------------------------------ the stage


def generate(opts: Options, echo: Any = print) -> StageSummary:
    started = time.monotonic()
    loaded = read_mutations(opts.mutations)
    bad_records.report(loaded.errors, opts.output, echo)
    if not loaded.lines:
        raise click.ClickException(
            f"no mutation records under {opts.mutations}; run `moa datagen mutate` first"
        )
    caught = [r for r in loaded.records if r.status == "caught" and r.language == opts.language]
    unique: dict[str, MutationRecord] = {}
    seen: set[tuple[str, str]] = set()
    for r in sorted(caught, key=record_id):
        pair = (package_of(r.source), diff_hash(r.diff))
        if pair not in seen:
            seen.add(pair)
            unique[record_id(r)] = r
    held_eval = eval_packages((package_of(r.source) for r in unique.values()), opts.eval_fraction, opts.seed)
    every = [Bug(rid, r) for rid, r in unique.items()]
    evals_work = [(t, "eval") for t in every if package_of(t.record.source) in held_eval]
    train_tasks = sorted(
        (t for t in every if package_of(t.record.source) not in held_eval),
        key=lambda t: _rank(opts.seed, "grpo:" + t.id),
    )
    n_grpo = round(len(train_tasks) * opts.grpo_fraction)
    grpo = train_tasks[:n_grpo]
    work = evals_work + [(t, "train") for t in train_tasks[n_grpo:]]
    work.sort(key=lambda t: _rank(opts.seed, t[0].id))
    if opts.limit is not None:
        work = work[: opts.limit]

    opts.output.mkdir(parents=True, exist_ok=True)
    progress = opts.output / PROGRESS
    done = {row["id"]: row for row in read_jsonl(progress)}
    todo = [(t, s) for t, s in work if t.id not in done]
    if done:
        echo(f"resuming: {len(done)} episodes already done, {len(todo)} to go")
    lock = threading.Lock()
    errors: list[dict[str, Any]] = []
    with (
        progress.open("a") as fh,
        Progress("trajectories", len(work), len(work) - len(todo), echo) as tick,
        ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool,
    ):
        futures = [pool.submit(run_episode, t, s, opts) for t, s in todo]
        try:
            for fut in as_completed(futures):
                row = fut.result()
                tick(_progress_line(row))
                if row.get("error"):
                    errors.append(row)
                    continue
                with lock:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                done[row["id"]] = row
        except BaseException:
            for fut in futures:  # what is recorded stays; a re-run resumes from there
                fut.cancel()
            raise
    if errors:
        # Not a verdict on the tasks: a workspace could not be built or a tool could not run
        # (a prepare that needs the network, a full disk). Every finished episode is kept.
        raise RuntimeError(
            f"{len(errors)} of {len(work)} episodes could not run ({errors[0]['id']}: "
            f"{errors[0]['reason'][:600]}); the {len(done)} finished ones are kept and a re-run "
            "retries the rest"
        )

    ids = {t.id for t, _ in work}
    rows = [done[i] for i in sorted(ids) if i in done]
    kept = [r["trajectory"] for r in rows if r["kept"]]
    train = [r["trajectory"] for r in rows if r["kept"] and r["split"] == "train"]
    evals = [r["trajectory"] for r in rows if r["kept"] and r["split"] == "eval"]
    write_jsonl(opts.output / "train" / FILE, train)
    write_jsonl(opts.output / "eval" / FILE, evals)
    tasks = [grpo_task(t, _file_chars(opts.language, t.record), opts.curriculum, bug_layout(t)) for t in grpo]
    write_jsonl(opts.grpo_output / "tasks.jsonl", tasks)
    reasons: dict[str, int] = {}
    for row in rows:
        if not row["kept"]:
            key = row["reason"].split(":")[0][:60]
            reasons[key] = reasons.get(key, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        echo(f"dropped {count}: {reason}")
    metrics = {
        "records": float(loaded.lines),
        "malformed_records": float(len(loaded.errors)),
        "caught": float(len(caught)),
        "duplicates_dropped": float(len(caught) - len(unique)),
        "attempted": float(len(rows)),
        "kept": float(len(kept)),
        "dropped": float(len(rows) - len(kept)),
        "train": float(len(train)),
        "eval": float(len(evals)),
        "grpo_tasks": float(len(tasks)),
        "eval_packages": float(len(held_eval)),
        "seconds": round(time.monotonic() - started, 2),
    }
    if kept:
        metrics["mean_tool_calls"] = sum(t["n_tool_calls"] for t in kept) / len(kept)
        metrics["mean_turns"] = sum(t["turns"] for t in kept) / len(kept)
    summary = StageSummary(
        stage="trajectories",
        status="succeeded",
        metrics=metrics,
        message=f"{len(kept)} trajectories ({len(train)} train, {len(evals)} eval) from {len(rows)} attempts; "
        f"{len(tasks)} GRPO tasks; teacher {opts.teacher_name}",
    )
    reports = opts.reports or opts.output / "reports"
    write_report(
        reports / "report.md", opts.language, "", summary, plots=episode_plots(kept, reports / "plots")
    )
    summary.write(opts.output / METRICS)  # last: it marks the stage complete
    progress.unlink(missing_ok=True)
    return summary


def episode_plots(kept: list[dict[str, Any]], folder: Path) -> list[Path]:
    """How long the kept demonstrations are: tool calls and turns per trajectory, by teacher."""
    plots = [
        charts.histograms(
            folder / f"{key}.png",
            f"{label} per trajectory",
            {t: [r[key] for r in kept if r["teacher"] == t] for t in sorted({r["teacher"] for r in kept})},
            label,
            integer=True,
        )
        for key, label in (("n_tool_calls", "tool calls"), ("turns", "turns"))
    ]
    return [p for p in plots if p is not None]


def _progress_line(row: dict[str, Any]) -> str:
    what = (
        f"kept ({row['trajectory']['n_tool_calls']} tool calls)"
        if row["kept"]
        else f"dropped: {row['reason'][:120]}"
    )
    return f"{row['id']} {row['split']}: {what}"


def _file_chars(language: str, record: MutationRecord) -> int:
    try:
        return (prepared_tree(language, record.source) / record.file).stat().st_size
    except (OSError, WorkspaceError):
        return 0


# ------------------------------------------------------------------------------ the command


@click.command("trajectories")
@config_option(required=False)
@click.option("--language", help="Language plugin (default: the config's).")
@click.option(
    "--mutations", type=click.Path(file_okay=False), help="Folder of mutation JSONL (searched recursively)."
)
@click.option("--output", type=click.Path(file_okay=False), help="Output folder (data/{lang}/core_agent).")
@click.option(
    "--grpo-output",
    type=click.Path(file_okay=False),
    help="GRPO task folder (default: OUTPUT/../grpo/tasks).",
)
@click.option(
    "--teacher", type=click.Choice(["oracle", "openai", "anthropic"]), help="Who writes the episodes."
)
@click.option("--model", help="Teacher model (API teachers).")
@click.option("--endpoint", help="Teacher base URL (OpenAI-compatible: including /v1).")
@click.option("--limit", type=int, help="At most this many episodes.")
@click.option("--seed", type=int, help="Seed for the split and the oracle's choices.")
@click.option("--eval-fraction", type=float, help="Share of packages held out for eval.")
@click.option(
    "--grpo-fraction", type=float, help="Share of train records kept for GRPO (default: the spec's)."
)
@click.option("--jobs", type=int, help="Episodes in parallel.")
def trajectories_cmd(
    config_path: Path | None,
    language: str | None,
    mutations: str | None,
    output: str | None,
    grpo_output: str | None,
    teacher: str | None,
    model: str | None,
    endpoint: str | None,
    limit: int | None,
    seed: int | None,
    eval_fraction: float | None,
    grpo_fraction: float | None,
    jobs: int | None,
) -> None:
    """Write Harmony agent trajectories (and GRPO tasks) from caught mutations."""
    cfg = StageConfig.load(config_path) if config_path else None
    language = language or (cfg.spec.language if cfg else None)
    if not language:
        raise click.UsageError("give --config or --language")
    # Without --config, the spec's defaults: one source for every setting.
    spec = cfg.spec if cfg else AdapterTrainingSpec.model_validate({"language": language})
    teacher_spec = spec.data.teacher
    given = {
        "mutations": Path(mutations) if mutations else None,
        "output": Path(output) if output else None,
        "grpo_output": Path(grpo_output) if grpo_output else None,
        "teacher": teacher,
        "model": model,
        "endpoint": endpoint,
        "seed": seed,
        "eval_fraction": eval_fraction,
        "grpo_fraction": grpo_fraction,
        "jobs": jobs,
    }
    run = overrides(
        {
            "mutations": cfg.layout.mutations if cfg else None,
            "output": cfg.layout.core_agent if cfg else None,
            "grpo_output": cfg.layout.grpo_tasks if cfg else None,
            "teacher": teacher_spec.kind,
            "model": teacher_spec.model,
            "endpoint": teacher_spec.endpoint,
            "seed": spec.stages.core_agent.seed,
            "eval_fraction": spec.data.eval_fraction,
            "grpo_fraction": spec.data.grpo_fraction,
            "jobs": spec.data.limits.jobs,
        },
        given,
    )
    out, muts = run["output"], run["mutations"]
    if out is None or muts is None:
        raise click.UsageError("give --config, or --mutations and --output")
    done = already_done("trajectories", out, click.echo)
    if done is not None:
        exit_with(done, out)
    opts = Options(
        language=language,
        mutations=muts,
        output=out,
        grpo_output=run["grpo_output"] or out.parent / "grpo" / "tasks",
        teacher=make_teacher(run["teacher"], run["model"], run["endpoint"]),
        teacher_name=run["teacher"],
        limit=limit,
        seed=run["seed"],
        eval_fraction=run["eval_fraction"],
        grpo_fraction=run["grpo_fraction"],
        jobs=run["jobs"],
        test_timeout_s=float(spec.data.limits.timeouts.test_seconds),
        curriculum=tuple(c.max_length for c in spec.stages.grpo.curriculum),
        reports=cfg.layout.reports / "trajectories" if cfg else None,
    )
    summary = generate(opts, echo=lambda s: click.echo(s, err=True))
    click.echo(summary.message)
    exit_with(summary, out)
