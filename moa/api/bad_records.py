"""Malformed input records: a stage skips them and says which, instead of crashing.

Every skipped record is named `file:line: why`. All of them go to `bad-records.txt` in the
stage's report folder (the place a user looks after a run); the first few are printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from moa.api import atomic
from moa.api.gates import GateResult, check

REPORT = "bad-records.txt"
SHOWN = 5


def report(bad: Sequence[str], folder: Path, echo: Callable[[str], object] = print) -> Path | None:
    """Write every bad record to `folder/bad-records.txt` (atomically) and print the first few.
    Returns the report's path, or None when there is nothing to report (a stale report is removed)."""
    path = folder / REPORT
    if not bad:
        path.unlink(missing_ok=True)
        return None
    atomic.write_text(path, "".join(f"{line}\n" for line in bad), errors="backslashreplace")
    for line in bad[:SHOWN]:
        echo(f"skipped malformed record: {line}")
    if len(bad) > SHOWN:
        echo(f"... and {len(bad) - SHOWN} more malformed records: all {len(bad)} are listed in {path}")
    return path


def note(bad: Sequence[str], folder: Path) -> str:
    """` (N malformed records left out, listed in …)` for a stage's "nothing to work on" error,
    so a user whose every record was malformed is sent to the list; empty when none was."""
    if not bad:
        return ""
    return f" ({len(bad)} malformed records left out, listed in {folder / REPORT})"


def gate(stage: str, bad: Sequence[str], limit: int, folder: Path) -> tuple[GateResult, str]:
    """A stage's malformed-records gate (spec.data.gates.maxMalformedRecords) on the records it
    left out, with the note its failure message carries: where all of them are listed."""
    result = check(f"{stage}.malformed_records", float(len(bad)), "<=", float(limit))
    if result.passed:
        return result, ""
    return result, (
        f"{len(bad)} malformed records left out, listed in {folder / REPORT}: fix the input, "
        f"or allow them with spec.data.gates.maxMalformedRecords (now {limit})"
    )
