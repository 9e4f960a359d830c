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
