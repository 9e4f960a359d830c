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
