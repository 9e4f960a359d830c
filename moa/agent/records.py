"""JSONL records as every stage reads them: one record per line, a bad one named by file:line.

Trajectories, preference pairs and task rows are all JSONL files (or folders of them); this
is the one reader, so every stage reports a bad record the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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


def read_records(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line, record) for every record under `path`, each with the string `fields`."""
    for file in jsonl_files(path):
        with file.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"{file}:{n}"
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{where}: not JSON ({exc})") from None
                missing = [
                    f
                    for f in fields
                    if not isinstance(record.get(f) if isinstance(record, dict) else None, str)
                ]
                if missing:
                    raise DataError(f"{where}: record needs string field(s) {', '.join(missing)}")
                yield where, record
