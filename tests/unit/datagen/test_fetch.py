"""The fetch stage, then mutate and trajectories with no network at all (a fresh network
namespace, as a pod behind deny-all egress): a real PyPI package, its real tests, real mutmut,
and the agent's workspaces built from the prepared tree fetch made."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moa.api.records import SourceRef
from moa.api.stages import StageConfig
from moa.api.training import AdapterTrainingSpec
from moa.languages.tools import cache_dir

SOURCE = "pypi:inflection@0.5.1"


def stage_config(root: Path, stage: str, sources: list[str]) -> Path:
    spec = AdapterTrainingSpec.model_validate(
        {"language": "python", "data": {"sources": sources, "limits": {"maxMutationsPerSource": 3}}}
    )
    config = StageConfig(stage=stage, root=str(root), name="t", spec=spec, shard=sources[0])  # type: ignore[arg-type]
    return config.write(root / f"{stage}.yaml")


def moa(*args: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "moa.cli", *args]
    if offline:  # no network at all: a new, empty network namespace
        cmd = ["unshare", "--net", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=1800)


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare for a network namespace")
def test_fetch_then_mutate_and_trajectories_offline_on_a_real_package(tmp_path: Path) -> None:
    # The prepared tree is a shared cache entry: drop it, so that only fetch can have built it.
    shutil.rmtree(cache_dir() / "prepared/python" / SourceRef.parse(SOURCE).slug, ignore_errors=True)
    fetched = moa("datagen", "fetch", "--config", str(stage_config(tmp_path, "fetch", [SOURCE])))
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    record = json.loads((tmp_path / "cache/fetched/python/inflection-0.5.1/metrics.json").read_text())
    assert record["status"] == "succeeded" and record["metrics"]["sources_fetched"] == 1

    mutated = moa(
        "datagen", "mutate", "--config", str(stage_config(tmp_path, "mutate", [SOURCE])), offline=True
    )
    assert mutated.returncode == 0, mutated.stderr[-3000:]
    out = tmp_path / "data/python/mutations/inflection-0.5.1"
    records = [json.loads(line) for line in (out / "mutations.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "caught" for r in records)
    assert json.loads((out / "metrics.json").read_text())["metrics"]["kept"] == len(records)

    # The oracle teacher's episodes run the package's tests in agent workspaces, offline too.
    episodes = moa(
        "datagen",
        "trajectories",
        "--config",
        str(stage_config(tmp_path, "trajectories", [SOURCE])),
        offline=True,
    )
    assert episodes.returncode == 0, episodes.stderr[-3000:]
    summary = json.loads((tmp_path / "data/python/core_agent/metrics.json").read_text())
    assert summary["status"] == "succeeded" and summary["metrics"]["kept"] >= 1, summary


def test_offline_mutate_of_an_unfetched_source_says_so(tmp_path: Path) -> None:
    mutated = moa("datagen", "mutate", "--config", str(stage_config(tmp_path, "mutate", ["pypi:six@1.16.0"])))
    assert mutated.returncode != 0
    assert (
        "pypi:six@1.16.0 was not fetched: the fetch stage (`moa datagen fetch`) runs first" in mutated.stderr
    )
