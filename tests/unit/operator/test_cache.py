"""The informer cache: what the watch streams deliver is what reconcile reads, newest first."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from moa.operator.cache import CachedKube, matches, trim
from moa.operator.workloads import ADAPTERS

PODS = ("v1", "pods")
TRAININGS = ("moa.dev/v1alpha1", "adaptertrainings")


def pod(name: str, version: int, training: str = "py", phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "labels": {"moa.dev/training": training},
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"containers": [{"name": "stage", "image": "x"}]},
        "status": {"phase": phase},
    }


@pytest.fixture
def kube() -> CachedKube:
    return CachedKube(
        client.ApiClient(), [PODS, TRAININGS], with_spec=[TRAININGS], index_label="moa.dev/training"
    )


def test_reads_come_from_events_trimmed_to_what_reconcile_reads(kube: CachedKube) -> None:
    kube.observe_event(PODS, None, pod("a", 5))
    kube.observe_event(PODS, "ADDED", pod("b", 6, training="other"))
    got = kube.get("v1", "pods", "ns", "a")
    assert got is not None and got["status"]["phase"] == "Running"
    assert "spec" not in got and "managedFields" not in got["metadata"]
    assert [p["metadata"]["name"] for p in kube.list("v1", "pods", "ns", "moa.dev/training=py")] == ["a"]
    assert kube.list("v1", "pods", "elsewhere") == [] and len(kube.list("v1", "pods", None)) == 2
    assert kube.requests == {}  # no API request for any of it


def test_an_older_version_never_replaces_a_newer_one_and_deletion_removes(kube: CachedKube) -> None:
    kube.observe_event(PODS, "MODIFIED", pod("a", 9, phase="Succeeded"))
    kube.observe_event(PODS, None, pod("a", 5, phase="Running"))  # a late relist answer
    assert kube.get("v1", "pods", "ns", "a")["status"]["phase"] == "Succeeded"  # type: ignore[index]
    kube.observe_event(PODS, "DELETED", pod("a", 10))
    assert kube.get("v1", "pods", "ns", "a") is None


def test_the_training_index_follows_relabels_and_deletions(kube: CachedKube) -> None:
    def names(selector: str) -> list[str]:
        return sorted(p["metadata"]["name"] for p in kube.list("v1", "pods", "ns", selector))

    kube.observe_event(PODS, "ADDED", pod("a", 1, training="py"))
    kube.observe_event(PODS, "ADDED", pod("b", 2, training="py"))
    kube.observe_event(PODS, "MODIFIED", pod("b", 3, training="go"))  # moved to another training
    assert names("moa.dev/training=py") == ["a"] and names("moa.dev/training=go") == ["b"]
    relabelled = pod("a", 4, training="py")
    relabelled["metadata"]["labels"]["moa.dev/stage"] = "sft"
    kube.observe_event(PODS, "MODIFIED", relabelled)
    assert names("moa.dev/training=py,moa.dev/stage=sft") == ["a"]  # the other terms still filter
    assert names("moa.dev/training=py,moa.dev/stage=eval") == []
    kube.observe_event(PODS, "DELETED", relabelled)
    assert names("moa.dev/training=py") == [] and names("moa.dev/stage=sft") == []


def test_trainings_keep_their_spec() -> None:
    body = {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": "t"},
        "spec": {"x": 1},
    }
    assert trim(body, keep_spec=True)["spec"] == {"x": 1}


def test_workloads_and_pods_keep_only_how_they_ended() -> None:
    term = {"exitCode": 0, "message": '{"stage":"sft"}', "finishedAt": "2026-01-01T00:10:00Z"}
    status = {
        "phase": "Succeeded",
        "podIP": "10.0.0.7",
        "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastProbeTime": None}],
        "containerStatuses": [
            {"name": "stage", "state": {"terminated": term}, "lastState": {}, "imageID": "x", "ready": False},
            {"name": "sidecar", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
        ],
    }
    kept = trim(
        {"kind": "Pod", "metadata": {"name": "p"}, "status": status, "spec": {"x": 1}}, keep_spec=False
    )
    assert kept == {
        "kind": "Pod",
        "metadata": {"name": "p"},
        "status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
            "containerStatuses": [
                {"name": "stage", "state": {"terminated": term}},
                {"name": "sidecar", "state": {}},
            ],
        },
    }
    # what observe() reads of it is all there
    attempt = ADAPTERS["Pod"].observe({**kept, "metadata": {"name": "p", "creationTimestamp": None}}, [])
    assert attempt.state == "succeeded" and attempt.finished_at is not None
    # the operator's own resources keep their whole status: reconcile compares it with the new one
    training = {"kind": "AdapterTraining", "metadata": {"name": "t"}, "status": status}
    assert trim(training, keep_spec=True)["status"] == status


def test_only_equality_selectors_are_understood() -> None:
    obj = pod("a", 1)
    assert matches(obj, "moa.dev/training=py") and not matches(obj, "moa.dev/training=go")
    with pytest.raises(ValueError, match="only key=value"):
        matches(obj, "moa.dev/training!=py")
