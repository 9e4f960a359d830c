"""The local runner's orchestration with stage processes whose outcome the test chooses."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from moa.api.stages import STAGE_NAMES
from moa.api.training import AdapterTraining
from moa.pipeline.local import LocalRun

DOUBLE = [sys.executable, str(Path(__file__).with_name("stage_double.py"))]
SOURCES = ["pypi:attrs@23.2.0", "pypi:six@1.16.0"]


def training(**spec: object) -> AdapterTraining:
    base = {"language": "python", "data": {"sources": SOURCES}, "backoffSeconds": 0, "maxAttempts": 2}
    base.update(spec)
    return AdapterTraining.model_validate({"metadata": {"name": "py"}, "spec": base})


def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **spec: object) -> tuple[LocalRun, Path]:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("MOA_TEST_LOG", str(log))
    return LocalRun(training(**spec), tmp_path / "root", moa_command=DOUBLE, poll_s=0.05), log


def calls(log: Path) -> list[str]:
    return log.read_text().split("\n")[:-1] if log.exists() else []


def test_runs_every_stage_in_order_then_rerun_skips_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local, log = runner(tmp_path, monkeypatch)
    final = local.run()
    assert final.phase == "Succeeded"
    stages = [c.split()[0] for c in calls(log)]
    # fetch and mutate run once per source (two here), then every later stage once.
    assert stages[:4] == ["fetch", "fetch", "mutate", "mutate"] and stages[4:] == list(STAGE_NAMES[2:])
    assert (local.state / "succeeded").exists()
    again, _ = runner(tmp_path, monkeypatch)
    log.unlink()
    assert again.run().phase == "Succeeded" and calls(log) == []


def test_crashed_stage_is_retried_and_the_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOA_TEST_FAIL", "sft:1")
    local, log = runner(tmp_path, monkeypatch)
    assert local.run().phase == "Succeeded"
    assert [c for c in calls(log) if c.startswith("sft")] == ["sft ", "sft "]
    assert len(local.attempts[("sft", None)]) == 2


def test_attempts_exhausted_fails_with_the_log_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOA_TEST_FAIL", "ipo")
    local, _ = runner(tmp_path, monkeypatch)
    final = local.run()
    stalled = next(c for c in final.conditions if c.type == "Stalled")
    assert final.phase == "Failed" and stalled.reason == "AttemptsExhausted"
    assert "boom: simulated crash" in stalled.message


def test_gate_failure_stops_and_rerun_of_the_stage_runs_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOA_TEST_GATE", "grpo")
    local, log = runner(tmp_path, monkeypatch)
    final = local.run()
    assert final.phase == "Failed" and final.stage == "grpo"
    assert "grpo.loss: 0.9 < 0.5 failed" in next(c.message for c in final.conditions if c.type == "Stalled")
    assert "merge" not in [c.split()[0] for c in calls(log)]
    monkeypatch.delenv("MOA_TEST_GATE")
    log.unlink()
    again, _ = runner(tmp_path, monkeypatch)
    again.rerun(["grpo"])
    assert again.run().phase == "Succeeded"
    assert [c.split()[0] for c in calls(log)] == ["grpo", "merge", "eval"]
