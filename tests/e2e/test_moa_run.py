"""`moa run` end to end, the path `make demo` takes, with smaller caps: real PyPI packages, real
mutation testing, oracle trajectories, a tiny random model through SFT -> preferences -> IPO ->
GRPO -> merge -> eval, then the local registry. Then: a re-run skips every stage, and an
impossible gate stops with exit code 3 naming the gate."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from moa.api.stages import STAGE_NAMES

# The whole pipeline runs in the module fixture, which counts against the first test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo-python.yaml"


def moa(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moa.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


# The e2e model is the random tiny model (`moa dev tiny-model` without --pretrain: seconds, not
# minutes): it learns nothing in a few steps, so the demo's learned thresholds are replaced by
# ones that check every stage ran and measured, and IPO may find no pair to learn from.
RANDOM_MODEL_THRESHOLDS = {
    ("coreAgent", "gates"): {"maxLoss": 20.0, "minToolCallAccuracy": 0.0},
    ("ipo", "gates"): {"minChosenOverRejected": 0.0, "klWarn": 5.0, "klAbort": 10.0},
    ("grpo", "gates"): {"minMeanReward": -1.0, "minRewardStd": 0.0, "minMaxReward": -1.0},
    ("eval", "targets"): {"minToolCallAccuracy": 0.0, "minCompilePassRate": 0.0},
    ("eval", "regression"): {"maxToolCallAccuracyDrop": 1.0},
}


def small_spec() -> dict[str, Any]:
    spec = yaml.safe_load(DEMO.read_text())
    s = spec["spec"]
    for (stage, part), thresholds in RANDOM_MODEL_THRESHOLDS.items():
        s["stages"][stage].setdefault(part, {}).update(thresholds)
    s["stages"]["ipo"]["skipWithoutPairs"] = True
    s["data"]["limits"]["maxMutationsPerSource"] = 8
    s["data"]["gates"]["minCaughtMutations"] = 6
    s["stages"]["preferences"]["maxTasks"] = 2
    s["stages"]["grpo"]["maxSteps"] = 2
    s["stages"]["grpo"]["numGenerations"] = 2
    s["stages"]["grpo"]["curriculum"] = [{"step": 0, "maxLength": 1536}, {"step": 1, "maxLength": 2048}]
    s["stages"]["grpo"]["gates"]["window"] = 2
    s["stages"]["eval"]["maxTasks"] = 2
    s["stages"]["eval"]["humanevalProblems"] = 2
    return spec


@pytest.fixture(scope="module")
def run_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("e2e")
    spec_file = root / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(small_spec(), sort_keys=False))
    made = moa("dev", "tiny-model", "--output", str(root / "checkpoints" / "coding_tui" / "final_merged"))
    assert made.returncode == 0, made.stderr
    result = moa("run", str(spec_file), "--workdir", str(root), "--plain")
    return root, spec_file, result


def test_every_stage_runs_and_the_adapter_is_registered(
    run_root: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    root, _, result = run_root
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for stage in STAGE_NAMES:
        assert f"{stage}: Succeeded" in result.stdout
    adapter = root / "checkpoints" / "adapters" / "python_coding"
    assert (adapter / "adapter_model.safetensors").exists()
    assert list((root / "reports" / "python").rglob("*.png")), "training and eval write plots"
    listed = moa("registry", "list", "--workdir", str(root))
    assert listed.returncode == 0 and "python-demo-coding" in listed.stdout
    exported = yaml.safe_load(moa("registry", "export", "--workdir", str(root)).stdout)
    entry = exported["adapters"]["python"][0]
    assert entry["stage"] == "trained" and entry["eval"], entry


def test_rerun_skips_every_completed_stage(
    run_root: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    root, spec_file, first = run_root
    assert first.returncode == 0
    logs = set((root / ".moa" / "python-demo" / "logs").iterdir())
    started = time.monotonic()
    again = moa("run", str(spec_file), "--workdir", str(root), "--plain")
    assert again.returncode == 0, again.stdout[-3000:]
    assert time.monotonic() - started < 60
    assert set((root / ".moa" / "python-demo" / "logs").iterdir()) == logs  # no stage process started


def test_impossible_gate_stops_with_exit_code_3(
    run_root: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    root, _, first = run_root
    assert first.returncode == 0
    spec = copy.deepcopy(small_spec())
    spec["spec"]["data"]["gates"]["minCaughtMutations"] = 1_000_000
    impossible = root / "impossible.yaml"
    impossible.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = moa("run", str(impossible), "--workdir", str(root), "--plain", "--rerun", "datagate")
    assert result.returncode == 3, result.stdout[-3000:]
    assert "caught" in result.stdout and "1e+06" in result.stdout
