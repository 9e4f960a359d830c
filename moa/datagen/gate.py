"""`moa datagen gate`: the data gate between data generation and SFT.

Measures the data from the files themselves, not from what earlier stages reported:
tool calls and turns are counted in the parsed Harmony text, every trajectory is validated
with `moa.harmony`, duplicates are found by normalised diff. It also checks
*decontamination*: no train trajectory may share a (package, file, function) or a
normalised diff with the eval split, or the SFT eval loss would measure memory. Thresholds
come from the spec (`spec.data.gates`); a failed gate exits 3 with every gate's value,
threshold and verdict in metrics.json, and a table in gates.md beside it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from moa import harmony as h
from moa.api import atomic, bad_records
from moa.api.gates import GateResult
from moa.api.layout import METRICS, Layout
from moa.api.records import SUITE_FAILURE, MutationRecord, SourceRef
from moa.api.stages import StageConfig, StageSummary
from moa.api.training import DataGates
from moa.datagen.dedup import diff_hash
from moa.datagen.trajectories import FILE, package_of, read_mutations
from moa.stage import already_done, config_option, exit_with


@dataclass(frozen=True)
class Measured:
    metrics: dict[str, float]
    examples: dict[str, list[str]]  # a few offending ids per problem, for the report


def turns_and_calls(conversation: h.Conversation) -> tuple[int, int]:
    """(turns, tool calls): a turn is one sampling run of the model, ending on a tool call
    or on the final answer."""
    calls = sum(m.is_tool_call for m in conversation.messages)
    finals = sum(m.role == "assistant" and m.channel == "final" for m in conversation.messages)
    return calls + finals, calls


REQUIRED = ("id", "text", "source", "file", "diff")


def scan_trajectories(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a trajectories file, and `file:line: reason` for each line that is not one."""
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    if not path.is_file():
        return rows, bad
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"{path}:{n}: not valid JSON ({exc.msg})")
            continue
        problem = _row_problem(row)
        if problem:
            bad.append(f"{path}:{n}: {problem}")
            continue
        rows.append(row)
    return rows, bad


def _row_problem(row: Any) -> str | None:
    """Why a parsed line is not a trajectory row the gate can measure, or None."""
    if not isinstance(row, dict):
        return f"a {type(row).__name__}, not a JSON object"
    missing = [k for k in REQUIRED if not isinstance(row.get(k), str)]
    if missing:
        return f"missing or not a string: {', '.join(missing)}"
    if not isinstance(row.get("function"), str | None):
        return f"function: not a string ({type(row['function']).__name__})"
    try:
        SourceRef.parse(row["source"])
    except ValueError as exc:
        return f"source: {exc}"
    return None


def measure(mutations: Path, train: Path, evals: Path) -> Measured:
    loaded = read_mutations(mutations)
    train_rows, train_bad = scan_trajectories(train / FILE)
    eval_rows, eval_bad = scan_trajectories(evals / FILE)
    rows = {"train": train_rows, "eval": eval_rows}
    examples: dict[str, list[str]] = {
        "malformed_records": [*loaded.errors, *train_bad, *eval_bad],
        "invalid_harmony": [],
        "duplicates": [],
        "eval_overlap": [],
    }
    valid = multi = turns = 0
    all_rows = [*rows["train"], *rows["eval"]]
    for row in all_rows:
        problems = h.check_text(row["text"])
        if problems:
            examples["invalid_harmony"].append(f"{row['id']}: {problems[0]}")
            continue
        valid += 1
        t, calls = turns_and_calls(h.parse(row["text"]))
        turns += t
        multi += calls >= 2
    pairs = Counter((package_of(r["source"]), diff_hash(r["diff"])) for r in all_rows)
    duplicates = sum(n - 1 for n in pairs.values())
    examples["duplicates"] = [f"{p} {d}" for (p, d), n in pairs.items() if n > 1]
    eval_functions = {(package_of(r["source"]), r["file"], r.get("function")) for r in rows["eval"]}
    eval_diffs = {diff_hash(r["diff"]) for r in rows["eval"]}
    overlap = [
        r["id"]
        for r in rows["train"]
        if (package_of(r["source"]), r["file"], r.get("function")) in eval_functions
        or diff_hash(r["diff"]) in eval_diffs
    ]
    examples["eval_overlap"] = overlap
    n = len(all_rows) + len(train_bad) + len(eval_bad)
    metrics: dict[str, float] = {
        "caught_mutations": float(sum(r.status == "caught" for r in loaded.records)),
        "malformed_mutation_records": float(len(loaded.errors)),
        "trajectories": float(n),
        "malformed_trajectory_rows": float(len(train_bad) + len(eval_bad)),
        "train_trajectories": float(len(rows["train"])),
        "eval_trajectories": float(len(rows["eval"])),
        "duplicate_pairs": float(duplicates),
        "eval_overlap": float(len(overlap)),
        "malformed_records": float(len(examples["malformed_records"])),
    }
    metrics |= pair_quality(loaded.records)
    if n:  # absent, not zero, when there is nothing to measure: an absent value fails its gate
        metrics["valid_harmony_fraction"] = valid / n
    if valid:
        metrics["multi_tool_fraction"] = multi / valid
        metrics["average_turns"] = turns / valid
    return Measured(metrics, examples)


# Bug classes no developer writes (moa.api.training.BugClass): sentinel strings, deleted blocks, stubs.
STUB_CLASSES = {"sentinel", "block", "stub"}


def pair_quality(records: list[MutationRecord]) -> dict[str, float]:
    """What the caught pairs are worth as training data: do they name a failing test, are they
    bugs a developer makes, were their diffs checked against the function they name."""
    caught = [r for r in records if r.status == "caught"]
    metrics = {"timeout_pairs": float(sum(r.status == "timeout" for r in records))}
    if caught:
        named = sum(any(t.name != SUITE_FAILURE for t in r.failing_tests) for r in caught)
        metrics["named_test_fraction"] = named / len(caught)
        metrics["stub_operator_fraction"] = sum(r.operator_class in STUB_CLASSES for r in caught) / len(
            caught
        )
        metrics["function_scoped_fraction"] = sum(r.function_scoped for r in caught) / len(caught)
    return metrics


def table(results: list[GateResult]) -> str:
    rows = [("gate", "value", "threshold", "result")]
    for r in results:
        value = "absent" if r.value is None else f"{r.value:.4g}"
        rows.append((r.name, value, f"{r.op} {r.threshold:.4g}", "pass" if r.passed else "FAIL"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def run_gate(
    layout: Layout, gates: DataGates, output: Path, echo: Callable[[str], object] = print
) -> StageSummary:
    measured = measure(layout.mutations, layout.core_agent_train, layout.core_agent_eval)
    malformed, where = bad_records.gate(
        "data", measured.examples["malformed_records"], gates.max_malformed_records, output
    )
    results = [*gates.evaluate(measured.metrics), malformed]
    failed = [r for r in results if not r.passed]
    notes = [f"{k}: {', '.join(v[:3])}" for k, v in measured.examples.items() if v] + (
        [where] if where else []
    )
    summary = StageSummary(
        stage="datagate",
        status="gate_failed" if failed else "succeeded",
        metrics=measured.metrics,
        gates=results,
        message=("failed: " + "; ".join(r.describe() for r in failed) if failed else "all data gates passed")
        + ("" if not notes else " | " + " | ".join(notes)),
    )
    output.mkdir(parents=True, exist_ok=True)
    bad_records.report(measured.examples["malformed_records"], output, echo)
    report = table(results) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    atomic.write_text(output / "gates.md", report)
    summary.write(output / METRICS)  # last: it marks the stage complete
    return summary


@click.command("gate")
@config_option(required=False)
@click.option("--root", type=click.Path(file_okay=False), help="Artifact root (without --config).")
@click.option("--language", help="Language (without --config).")
def gate_cmd(config_path: Path | None, root: str | None, language: str | None) -> None:
    """Check the generated data against the spec's data gates (exit 3 when one fails)."""
    if config_path:
        cfg = StageConfig.load(config_path)
        layout, gates = cfg.layout, cfg.spec.data.gates
    elif root and language:
        layout, gates = Layout(root, language), DataGates()
    else:
        raise click.UsageError("give --config, or --root and --language (default thresholds)")
    output = layout.stage_dir("datagate")
    done = already_done("datagate", output, click.echo, again_after=("failed", "gate_failed"))
    if done is not None:
        exit_with(done, output)
    summary = run_gate(layout, gates, output, lambda line: click.echo(line, err=True))
    click.echo(table(summary.gates))
    click.echo(summary.message)
    exit_with(summary, output)
