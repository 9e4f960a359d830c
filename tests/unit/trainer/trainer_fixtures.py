"""Real Harmony agent trajectories and stage configs for the trainer tests (tiny model, CPU).

The trajectories follow the agent's loop on small repair tasks (read, test, patch, test,
answer) through `moa.harmony`, so they are valid training data; they are regular enough
that a tiny random model learns the tool-call format in a few dozen steps.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from moa import harmony as h
from moa.api.layout import Layout
from moa.api.stages import StageConfig
from moa.api.training import AdapterTraining

FUNCS = [("add", "+", "-"), ("sub", "-", "+"), ("mul", "*", "/"), ("div", "/", "*")]


def trajectory(i: int, rng: random.Random) -> h.Conversation:
    name, good, bad = FUNCS[i % len(FUNCS)]
    path = f"src/mod_{i % 5}.py"
    buggy = f"def {name}(a, b):\n    return a {bad} b\n"
    patch = (
        f"*** Begin Patch\n*** Update File: {path}\n@@ def {name}(a, b):\n"
        f"-    return a {bad} b\n+    return a {good} b\n*** End Patch"
    )
    return h.Conversation(
        [
            h.system_message(),
            h.developer_message("Fix the failing tests with the tools."),
            h.user(f"test_{name} fails in {path}."),
            h.analysis("Run the tests first."),
            h.tool_call("run_tests", {}),
            h.tool_result("run_tests", f"FAILED test_{name} ({rng.randint(1, 9)} passed)"),
            h.tool_call("read_file", {"path": path}),
            h.tool_result("read_file", buggy),
            h.tool_call("apply_patch", {"patch": patch}),
            h.tool_result("apply_patch", "patch applied"),
            h.tool_call("run_tests", {}),
            h.tool_result("run_tests", "all tests passed"),
            h.final(f"Fixed {name} in {path}."),
        ]
    )


def write_trajectories(folder: Path, count: int, seed: int) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "trajectories.jsonl"
    with out.open("w") as fh:
        for i in range(count):
            fh.write(json.dumps({"text": h.render(trajectory(i, rng), "training")}) + "\n")
    return out


def write_pairs(folder: Path, count: int, seed: int) -> Path:
    """Preference pairs from trajectories: at each tool call, chosen = the call made,
    rejected = the same call to a tool that does not exist (an invalid tool call)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "pairs.jsonl"
    with out.open("w") as fh:
        for i in range(count):
            conv = trajectory(i, rng)
            at = [j for j, m in enumerate(conv.messages) if m.is_tool_call][i % 4]
            prompt = h.render(h.Conversation(conv.messages[:at]), "completion")
            call = conv.messages[at]
            chosen = h.render_message(call)[len("<|start|>assistant") :]
            rejected = chosen.replace(str(call.recipient), "functions.delete_repository")
            fh.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return out


def write_stage_data(root: Path) -> Path:
    """An artifact root with SFT trajectories (32 train, 3 held out) and 16 preference pairs."""
    layout = Layout(root, "python")
    write_trajectories(layout.core_agent_train, 32, seed=0)
    write_trajectories(layout.core_agent_eval, 3, seed=1)
    write_pairs(layout.ipo_train, 16, seed=2)
    return root


def stage_config(root: Path, model: Path, stage: str, path: Path, max_seq: int = 256, **stages: Any) -> Path:
    """A StageConfig with a tiny LoRA and the given stage sections (tiny thresholds live here)."""
    training = AdapterTraining.model_validate(
        {
            "metadata": {"name": "python-test"},
            "spec": {
                "language": "python",
                "baseModel": str(model),
                "lora": {"r": 8, "alpha": 16, "maxSeqLength": max_seq, "loadIn4bit": False},
                "stages": stages,
            },
        }
    )
    return StageConfig.for_training(training, stage, root=str(root)).write(path)
