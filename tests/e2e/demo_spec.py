"""The demo spec with smaller caps, shared by the `moa run` end-to-end test and the test that
runs the same spec in real pods (tests/cluster/test_demo_in_pods.py), so the two compare like
with like."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo-python.yaml"


def moa(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "moa.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def small_spec() -> dict[str, Any]:
    spec = yaml.safe_load(DEMO.read_text())
    s = spec["spec"]
    s["data"]["limits"]["maxMutationsPerSource"] = 8
    s["data"]["gates"]["minCaughtMutations"] = 6
    s["stages"]["preferences"]["maxTasks"] = 2
    s["stages"]["grpo"]["maxSteps"] = 2
    s["stages"]["grpo"]["curriculum"] = [{"step": 0, "maxLength": 2048}, {"step": 1, "maxLength": 4096}]
    s["stages"]["grpo"]["gates"]["window"] = 2
    s["stages"]["eval"]["maxTasks"] = 2
    s["stages"]["eval"]["humanevalProblems"] = 2
    return spec
