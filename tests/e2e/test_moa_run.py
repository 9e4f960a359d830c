"""`moa run` end to end, the path `make demo` takes, with smaller caps: real PyPI packages, real
mutation testing, oracle trajectories, a tiny random model through SFT -> preferences -> IPO ->
GRPO -> merge -> eval, then the local registry. Then: a re-run skips every stage, and an
impossible gate stops with exit code 3 naming the gate."""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from demo_spec import moa, small_spec

from moa.api.adapter import artifact_digest
from moa.api.layout import Layout
from moa.api.stages import STAGE_NAMES, StageSummary

# The whole pipeline runs in the module fixture, which counts against the first test's timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


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
    # The registry points at the copy the eval stage published (its metrics.json names it, as its
    # termination message does for the operator), never at the folder a retraining rewrites.
    evaluation = StageSummary.read(Layout(root, "python").metrics("eval"))
    assert evaluation.published is not None
    assert (entry["path"], entry["digest"]) == (evaluation.published.artifact, evaluation.published.digest)
    assert entry["path"].startswith("checkpoints/adapters/published/python-demo-coding@")
    assert artifact_digest(root / entry["path"]) == entry["digest"] == artifact_digest(adapter)


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
