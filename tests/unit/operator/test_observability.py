"""The operator's Prometheus metrics count what they say they count."""

from __future__ import annotations

from prometheus_client import REGISTRY

from moa.operator import observability as obs
from moa.pipeline.planner import Launch, workload_name


def created(stage: str) -> float:
    return REGISTRY.get_sample_value("moa_workloads_created_total", {"stage": stage}) or 0.0


def test_workloads_created_is_labelled_by_the_launch_stage_not_a_name_fragment() -> None:
    # A training named like a stage, a shard with dashes and digits: names cannot be parsed back.
    launches = [
        Launch("mutate", "pypi:six@1.16.0", 2, workload_name("sft-x", "mutate", "pypi:six@1.16.0", 2)),
        Launch("sft", None, 1, workload_name("eval-7", "sft", None, 1)),
        Launch("sft", None, 2, workload_name("eval-7", "sft", None, 2)),
    ]
    before = {stage: created(stage) for stage in ("mutate", "sft", "eval", "sft-x")}
    obs.count_workloads(launches)
    assert created("mutate") - before["mutate"] == 1
    assert created("sft") - before["sft"] == 2
    assert created("eval") == before["eval"] and created("sft-x") == before["sft-x"]


def stages(state: str) -> float:
    return REGISTRY.get_sample_value("moa_stages", {"state": state}) or 0.0


def test_stage_gauge_sums_each_trainings_latest_view() -> None:
    before = {state: stages(state) for state in ("Pending", "Running", "Succeeded")}
    obs.record_stages("ns/a", ["Succeeded", "Running", "Pending"])
    obs.record_stages("ns/b", ["Succeeded", "Pending", "Pending"])
    obs.record_stages("ns/a", ["Succeeded", "Succeeded", "Running"])  # a moved on: replaces its view
    assert stages("Succeeded") - before["Succeeded"] == 3
    assert stages("Running") - before["Running"] == 1
    assert stages("Pending") - before["Pending"] == 2
    obs.forget("ns/b")
    obs.forget("ns/gone")  # never recorded: nothing to take away
    assert stages("Succeeded") - before["Succeeded"] == 2 and stages("Pending") == before["Pending"]
