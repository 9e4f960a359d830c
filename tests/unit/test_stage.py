"""The stage harness: flags override the spec once; a completed stage is a no-op; exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from moa.api.gates import GateResult
from moa.api.stages import StageSummary
from moa.stage import already_done, exit_with, overrides


def test_a_flag_given_replaces_the_spec_setting_and_none_keeps_it() -> None:
    defaults = {"samples": 4, "output": Path("/data/ipo"), "max_tasks": 2000}
    assert overrides(defaults, {"samples": None, "max_tasks": 0}) == {
        "samples": 4,
        "output": Path("/data/ipo"),
        "max_tasks": 0,  # given, even though falsy
    }


@pytest.mark.parametrize(
    ("status", "again_after", "noop"),
    [
        ("succeeded", ("failed",), True),
        ("gate_failed", ("failed",), True),  # a training stage keeps its failed gate
        ("failed", ("failed",), False),  # a failed run is run again
        ("gate_failed", ("failed", "gate_failed"), False),  # the data gate re-checks
    ],
)
def test_already_done(tmp_path: Path, status: str, again_after: tuple[str, ...], noop: bool) -> None:
    assert already_done("sft", tmp_path) is None  # nothing there yet
    StageSummary(stage="sft", status=status, metrics={"loss": 0.4}).write(tmp_path / "metrics.json")  # type: ignore[arg-type]
    before = (tmp_path / "metrics.json").read_bytes()
    said: list[str] = []
    done = already_done("sft", tmp_path, said.append, again_after=again_after)  # type: ignore[arg-type]
    assert (done is not None) == noop
    assert bool(said) == noop and (not said or "already complete" in said[0])
    assert (tmp_path / "metrics.json").read_bytes() == before


def test_exit_codes_and_the_termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "termination-log"
    log.touch()
    monkeypatch.setenv("MOA_TERMINATION_LOG", str(log))
    failed_gate = GateResult(name="sft.train_loss", value=0.9, op="<", threshold=0.5, passed=False)
    for summary, code in (
        (StageSummary(stage="sft", status="succeeded"), 0),
        (StageSummary(stage="sft", status="gate_failed", gates=[failed_gate]), 3),
    ):
        with pytest.raises(SystemExit) as exited:
            exit_with(summary, tmp_path)
        assert exited.value.code == code
        assert StageSummary.model_validate_json(log.read_text()).status == summary.status
    with pytest.raises(RuntimeError, match="sft failed: out of memory"):
        exit_with(StageSummary(stage="sft", status="failed", message="out of memory"), tmp_path)
