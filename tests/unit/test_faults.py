"""The fault campaign's core (`bench/faults.py`) on the trajectories stage: the real command,
SIGKILLed with its process group half-way through an uninterrupted run's time, then run again,
gives the uninterrupted run's artifacts and leaves no litter (no temporary or progress file, no
`.partial` folder, no sandbox scratch in its TMPDIR)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
import faults

pytestmark = pytest.mark.slow


def test_a_killed_stage_reruns_to_the_same_artifacts_without_litter(tmp_path: Path) -> None:
    kind = faults.KINDS["trajectories"]
    inputs, argv = faults.prepare(kind, tmp_path)
    base = faults.baseline_run(kind, inputs, argv, tmp_path)
    assert base.outcome.code == 0, base.outcome.output[-2000:]
    assert faults.artifacts(base.root, kind), "the uninterrupted run published nothing to compare"
    trial = faults.kill_trial(kind, inputs, argv, base, tmp_path / "killed", at=base.outcome.seconds / 2)
    assert trial.killed_mid_run == 1, trial.notes  # the kill hit a running stage
    assert trial.resumed_ok == 1 and trial.identical == 1, trial.notes
    assert trial.litter == 0, trial.notes
