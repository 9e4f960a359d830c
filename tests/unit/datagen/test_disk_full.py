"""The disk fills up mid-write (a 256 KiB tmpfs holds the gate's report folder): the re-run
fails with a clear error naming the file, the previous outputs are intact and no temporary
file is left behind."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from python_mutations import stage_config
from test_gate import _diff, _row, _write

from moa.cli import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    reports = tmp_path / "reports"
    reports.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "moa-test-full", str(reports)], check=True)
    try:
        yield reports
    finally:
        subprocess.run(["umount", str(reports)], check=True)


def test_gate_on_a_full_disk_keeps_previous_outputs(tmp_path: Path, small_disk: Path) -> None:
    _write(tmp_path, [_row(1, "pypi:a@1", "f", _diff("x = 1", "x = 2"), calls=1)], [])
    config = stage_config(tmp_path, "datagate", gates={"minCaughtMutations": 0})
    first = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    assert first.exit_code == 3, first.output  # a failed gate: the re-run below measures again
    out = small_disk / "python" / "datagate"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "metrics.json" in before and "gates.md" in before
    filler = small_disk / "filler"
    with filler.open("wb", buffering=0) as fh, pytest.raises(OSError):
        while True:
            fh.write(b"x" * 4096)
    again = CliRunner().invoke(cli, ["datagen", "gate", "--config", str(config)])
    assert again.exit_code == 1
    assert "No space left on device" in again.output and "previous content is unchanged" in again.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # intact, no .tmp litter
    json.loads(before["metrics.json"])


def test_a_full_disk_names_the_file_being_written(small_disk: Path) -> None:
    """The OS names no file when a write to an open file fails (trajectories' rows, a report), nor
    does safetensors when it saves weights: `moa`'s one error handler finds the file where the
    write happened and says what to do."""
    import sys

    from moa.api import disk_full

    rows = small_disk / "rows.jsonl"
    with pytest.raises(OSError) as full, rows.open("w") as fh:
        while True:
            fh.write("x" * 4096)
    line = disk_full.describe(full.value)
    assert line is not None and f"writing {rows}:" in line and "run the same command again" in line
    rows.unlink()

    # A real command whose weights do not fit: safetensors' own error, no OSError, no file name.
    out = small_disk / "tiny"
    cmd = [sys.executable, "-m", "moa.cli", "dev", "tiny-model", "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    assert f"moa: error: the disk is full writing {out}" in done.stderr, done.stderr
    assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
    assert disk_full.describe(ValueError("a bad row")) is None  # anything else keeps its own message
