"""JSONL records as every stage reads them: one record per line, a bad one named by file:line.

Trajectories, preference pairs and task rows are all JSONL files (or folders of them); this
is the one reader, so every stage reports a bad record the same way. A reader either stops at
the first bad record (a `DataError` naming it) or, given a `skipped` list, leaves each bad
record out and appends `file:line: why` to it, so a stage runs on the good records and
reports every bad one (`moa.api.bad_records`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class DataError(ValueError):
    """A bad input record; the message names the file and line."""


def jsonl_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else []
    if not files:
        raise DataError(f"no *.jsonl files under {path}: generate the data first (moa datagen ...)")
    return files


def skip_or_raise(exc: DataError, skipped: list[str] | None) -> None:
    """Record a bad record in `skipped`, or, without one, stop with it."""
    if skipped is None:
        raise exc
    skipped.append(str(exc))


def parse_record(where: str, raw: bytes, fields: tuple[str, ...]) -> dict[str, Any]:
    """One JSONL line as a JSON object with the string `fields`; DataError names what is wrong."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise DataError(f"{where}: not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: a {type(record).__name__}, not a JSON object")
    missing = [f for f in fields if not isinstance(record.get(f), str)]
    if missing:
        raise DataError(f"{where}: record needs string field(s) {', '.join(missing)}")
    return record


def read_records(
    path: Path, fields: tuple[str, ...], skipped: list[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line, record) for every record under `path`, each a JSON object with the string
    `fields`. A bad line raises DataError, or, given `skipped`, is named there and left out."""
    for file in jsonl_files(path):
        with file.open("rb") as fh:  # bytes: a line that is not UTF-8 is one bad record, not a crash
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                where = f"{file}:{n}"
                try:
                    record = parse_record(where, raw, fields)
                except DataError as exc:
                    skip_or_raise(exc, skipped)
                    continue
                yield where, record


def build_each(
    rows: Iterable[tuple[str, dict[str, Any]]],
    build: Callable[[str, dict[str, Any]], T | None],
    skipped: list[str] | None = None,
) -> Iterator[T]:
    """`build(where, row)` for every row: None leaves a row out silently (not this stage's), a
    DataError leaves it out named in `skipped` (or stops the read without one)."""
    for where, row in rows:
        try:
            item = build(where, row)
        except DataError as exc:
            skip_or_raise(exc, skipped)
            continue
        if item is not None:
            yield item
