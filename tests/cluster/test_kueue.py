"""Kueue, built from its Go module and run by `moa dev cluster up --with kueue`, admits moa's own
GPU workloads: the operator renders each GPU stage as a batch Job carrying the queue label, Kueue's
webhook suspends it, and its scheduler admits it against a ClusterQueue's nvidia.com/gpu quota."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import given_kubeconfig
from test_operator import condition, get, summary_message, training

from moa.api.stages import STAGES
from moa.dev import controllers, fake_pods
from moa.dev.cluster import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.controllers]

GPU_STAGES = [s.name for s in STAGES if s.gpu]


@pytest.fixture(scope="module")
def kueue(request: pytest.FixtureRequest, kubeconfig: Path) -> None:
    if given_kubeconfig(request.config):
        pytest.skip("the Kueue addon runs on moa's local control plane only (no --kubeconfig)")
    if not controllers.binary("kueue").is_file() and not os.environ.get("MOA_BUILD_CONTROLLERS"):
        pytest.skip(
            "kueue is not built (cold build ~30 min on 2 cores): run `moa dev cluster up --with kueue` "
            "once, or set MOA_BUILD_CONTROLLERS=1"
        )
    Cluster(os.environ.get("MOA_TEST_CLUSTER", "moa")).up(["kueue"])


def queue_objects(namespace: str, gpus: int) -> list[dict[str, Any]]:
    """A ClusterQueue with GPU quota for this namespace only, and its LocalQueue `gpu`."""
    flavor = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ResourceFlavor",
        "metadata": {"name": "moa-default"},
    }
    resources = {"cpu": "64", "memory": "256Gi", "ephemeral-storage": "2Ti", "nvidia.com/gpu": str(gpus)}
    cluster_queue = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": namespace},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceGroups": [
                {
                    "coveredResources": list(resources),
                    "flavors": [
                        {
                            "name": "moa-default",
                            "resources": [{"name": k, "nominalQuota": v} for k, v in resources.items()],
                        }
                    ],
                }
            ],
        },
    }
    local = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "gpu", "namespace": namespace},
        "spec": {"clusterQueue": namespace},
    }
    return [flavor, cluster_queue, local]


@pytest.fixture
def gpu_queue(kueue: None, training_ns: str, kubectl: Callable[..., Any]) -> Iterator[str]:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(queue_objects(training_ns, gpus=1)))
    yield training_ns
    kubectl("delete", "clusterqueue", training_ns, "--wait=false", check=False)


def gpu_training(name: str, duration: str) -> dict[str, Any]:
    """Every GPU stage asks for one GPU through the queue and runs DURATION on a KWOK GPU node."""
    stages = {
        st: fake_pods.annotations(duration=duration, message=summary_message(st, seconds=1.0))
        for st in GPU_STAGES
    }
    doc = training(name, stages=stages)
    doc["spec"]["data"]["sources"] = doc["spec"]["data"]["sources"][:1]
    doc["spec"]["resources"].update(gpus=1, queueName="gpu", backend="job")
    return doc


def workloads(kubectl: Callable[..., Any], ns: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", "workloads.kueue.x-k8s.io", "-n", ns, "-o", "json").stdout)["items"]


def admitted(workload: dict[str, Any]) -> bool:
    return condition(workload, "Admitted").get("status") == "True"


def test_gpu_stage_with_a_queue_is_admitted_by_kueue_against_gpu_quota(
    gpu_queue: str, operator: Any, kubectl: Callable[..., Any]
) -> None:
    ns = gpu_queue
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(gpu_training("solo", "300ms")))
    kubectl("wait", "--for=condition=Ready", "adaptertraining/solo", "-n", ns, "--timeout=180s")
    # One Kueue Workload per GPU stage Job, each admitted by the ClusterQueue with GPU quota.
    jobs = {
        w["metadata"]["ownerReferences"][0]["name"]: w
        for w in workloads(kubectl, ns)
        if w["metadata"].get("ownerReferences")
    }
    assert len(jobs) == len(GPU_STAGES) and all(admitted(w) for w in jobs.values())
    admission = next(iter(jobs.values()))["status"]["admission"]
    assert admission["clusterQueue"] == ns
    used = admission["podSetAssignments"][0]["resourceUsage"]
    assert used["nvidia.com/gpu"] == "1"
    sft = get(kubectl, ns, "job", next(n for n in jobs if "-sft-" in n))
    assert sft["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"  # moa's own rendered Job


def test_two_trainings_competing_for_one_gpu_queue_then_both_run(
    gpu_queue: str, operator: Any, kubectl: Callable[..., Any]
) -> None:
    ns = gpu_queue
    docs = [gpu_training(name, "3s") for name in ("first", "second")]
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))
    seen_queued: dict[str, str] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for name in ("first", "second"):
            at = get(kubectl, ns, "adaptertraining", name)
            assert at.get("status", {}).get("phase") != "Failed", at["status"]
            assert condition(at, "Stalled").get("status") != "True", at["status"]
            reconciling = condition(at, "Reconciling")
            if reconciling.get("reason") == "Queued":
                seen_queued[name] = reconciling["message"]
        running = [
            w
            for w in workloads(kubectl, ns)
            if admitted(w) and condition(w, "Finished").get("status") != "True"
        ]
        assert len(running) <= 1  # one GPU of quota: never two admitted at once
        ready = [
            n
            for n in ("first", "second")
            if condition(get(kubectl, ns, "adaptertraining", n), "Ready").get("status") == "True"
        ]
        if len(ready) == 2:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("both trainings did not reach Ready in 300 s")
    assert seen_queued, "neither training was ever reported as queued"
    assert all("queued" in msg for msg in seen_queued.values())
