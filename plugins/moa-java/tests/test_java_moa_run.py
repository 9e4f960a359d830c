"""`moa run` of a Java spec through every stage with the tiny random model: the demo's small
spec (tests/e2e/demo_spec.py) with `language: java` and two Maven Central artifacts, one of
which is held out for eval. Nothing in moa's pipeline knows it is Java: the plugin's fetcher,
PIT runner and javac/JUnit evaluator are reached through the `moa.languages` entry point."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_spec import moa, small_spec

from moa.api.stages import STAGE_NAMES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(6000)]
SOURCES = ["maven:commons-cli:commons-cli@1.9.0", "maven:org.apache.commons:commons-numbers-fraction@1.2"]


def java_spec() -> dict[str, Any]:
    spec = small_spec()
    spec["metadata"]["name"] = "java-demo"
    s = spec["spec"]
    s["language"] = "java"
    s["data"]["sources"] = SOURCES
    s["data"]["limits"]["maxMutationsPerSource"] = 4
    s["data"]["gates"]["minCaughtMutations"] = 6
    s["data"]["grpoFraction"] = 0.25  # of 4 train tasks, one for GRPO (the default 0.1 rounds to none)
    return spec


def test_moa_run_of_a_java_spec(tmp_path: Path) -> None:
    spec_file = tmp_path / "java.yaml"
    spec_file.write_text(yaml.safe_dump(java_spec(), sort_keys=False))
    made = moa("dev", "tiny-model", "--output", str(tmp_path / "checkpoints" / "coding_tui" / "final_merged"))
    assert made.returncode == 0, made.stderr
    result: subprocess.CompletedProcess[str] = moa(
        "run", str(spec_file), "--workdir", str(tmp_path), "--plain", timeout=5800
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for stage in STAGE_NAMES:
        assert f"{stage}: Succeeded" in result.stdout
    assert (tmp_path / "checkpoints" / "adapters" / "java_coding" / "adapter_model.safetensors").exists()
