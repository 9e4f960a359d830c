"""The local control plane behaves like a real cluster: validation, admission, controllers, scheduler.

Everything here is decided by the real kube-apiserver, kube-controller-manager and kube-scheduler;
only kubelets are simulated (KWOK), with pod outcomes chosen by moa.dev.fake_pods annotations.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from moa.dev import fake_pods

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.k8s.io/pause:3.10"


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def pod_spec(restart: str = "Never", **extra: Any) -> dict[str, Any]:
    return {"restartPolicy": restart, "containers": [{"name": "main", "image": IMAGE}], **extra}


def pod(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": pod_spec(**spec),
    }


def wait_phase(kubectl, namespace: str, name: str, phase: str) -> None:
    kubectl(
        "wait", "-n", namespace, f"--for=jsonpath={{.status.phase}}={phase}", f"pod/{name}", "--timeout=60s"
    )


# -- moa's own resources -------------------------------------------------------------------------
MINIMAL_TRAINING = {
    "apiVersion": "moa.dev/v1alpha1",
    "kind": "AdapterTraining",
    "metadata": {"name": "python-minimal"},
    "spec": {"language": "python"},
}


def sample_trainings() -> list[dict[str, Any]]:
    docs = [MINIMAL_TRAINING]
    for path in sorted((REPO / "manifests" / "samples").glob("**/*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "AdapterTraining"]
    return docs


@pytest.mark.parametrize("doc", sample_trainings(), ids=lambda d: d["metadata"]["name"])
def test_sample_adapter_training_is_accepted_and_defaulted(kubectl, namespace, doc):
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(doc))
    got = yaml.safe_load(kubectl("get", "-n", namespace, "at", doc["metadata"]["name"], "-o", "yaml").stdout)
    assert got["spec"]["language"] == doc["spec"]["language"]
    assert got["spec"]["lora"]["r"] >= 1  # filled in by the server's structural defaults


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ["spec.language", "Required value"]),
        ({"language": "Python!"}, ["spec.language", "should match"]),
        ({"language": "python", "lora": {"r": 0}}, ["spec.lora.r", "greater than or equal to 1"]),
        ({"language": "python", "lora": {"alpha": 0}}, ["spec.lora.alpha", "alpha must be > 0"]),
        (
            {"language": "python", "resources": {"backend": "pytorchjob", "gpus": 0}},
            ["spec.resources.gpus", "pytorchjob and trainjob backends need gpus > 0"],
        ),
        (
            {"language": "python", "resources": {"backend": "slurm"}},
            ["spec.resources.backend", "Unsupported value"],
        ),
    ],
    ids=["missing-language", "bad-language", "lora-r-zero", "cel-alpha", "cel-gpus", "bad-backend"],
)
def test_invalid_adapter_training_is_refused_naming_the_field(kubectl, namespace, spec, expected):
    doc = copy.deepcopy(MINIMAL_TRAINING)
    doc["spec"] = spec
    result = kubectl("apply", "-n", namespace, "-f", "-", input=dump(doc), check=False)
    assert result.returncode != 0
    for fragment in expected:
        assert fragment in result.stderr, result.stderr


# -- admission -----------------------------------------------------------------------------------
def test_restricted_namespace_refuses_privileged_pod_and_accepts_compliant_one(kubectl, namespace):
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    privileged = pod("privileged")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    refused = kubectl("apply", "-n", namespace, "-f", "-", input=dump(privileged), check=False)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr and "privileged" in refused.stderr

    compliant = pod(
        "compliant", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    )
    compliant["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(compliant))
    wait_phase(kubectl, namespace, "compliant", "Succeeded")


# -- controllers, scheduler, simulated kubelets --------------------------------------------------
def batch_job(name: str, annotations: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"metadata": {"annotations": annotations}, "spec": pod_spec(**spec)},
        },
    }


def test_job_pods_run_on_kwok_nodes_and_the_job_completes(kubectl, kube_api, namespace):
    from kubernetes import client

    job = batch_job("two-pods", fake_pods.annotations(duration="500ms"), nodeSelector={"moa.dev/pool": "cpu"})
    job["spec"].update(completions=2, parallelism=2)
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(job))
    kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/two-pods", "--timeout=60s")

    status = client.BatchV1Api(kube_api).read_namespaced_job("two-pods", namespace).status
    assert status.succeeded == 2
    pods = client.CoreV1Api(kube_api).list_namespaced_pod(namespace, label_selector="job-name=two-pods").items
    assert len(pods) == 2
    nodes = {n.metadata.name: n for n in client.CoreV1Api(kube_api).list_node().items}
    for p in pods:
        assert p.status.phase == "Succeeded"
        assert nodes[p.spec.node_name].metadata.labels["moa.dev/pool"] == "cpu"
        assert p.status.container_statuses[0].state.terminated.reason == "Completed"


def test_job_with_failing_pod_fails_through_the_job_controller(kubectl, namespace):
    job = batch_job("doomed", fake_pods.annotations(fake_pods.FAIL, duration="200ms"))
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(job))
    kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/doomed", "--timeout=60s")
    reason = kubectl(
        "get",
        "-n",
        namespace,
        "job/doomed",
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Failed")].reason}',
    ).stdout
    assert reason == "BackoffLimitExceeded"


def gpu_pod(name: str, tolerate: bool) -> dict[str, Any]:
    doc = pod(name, fake_pods.annotations(duration="200ms"), restart="OnFailure")
    doc["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    if tolerate:
        doc["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return doc


def test_gpu_pod_lands_on_a_gpu_node_through_the_scheduler(kubectl, kube_api, namespace):
    from kubernetes import client

    kubectl("apply", "-n", namespace, "-f", "-", input=dump(gpu_pod("gpu", tolerate=True)))
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(gpu_pod("no-toleration", tolerate=False)))
    wait_phase(kubectl, namespace, "gpu", "Succeeded")

    core = client.CoreV1Api(kube_api)
    node = core.read_node(core.read_namespaced_pod("gpu", namespace).spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert node.status.allocatable["nvidia.com/gpu"] == "8"

    # Without the toleration no node fits: CPU nodes have no GPUs, GPU nodes are tainted.
    kubectl(
        "wait", "-n", namespace, "--for=condition=PodScheduled=False", "pod/no-toleration", "--timeout=30s"
    )
    stuck = core.read_namespaced_pod("no-toleration", namespace)
    (cond,) = [c for c in stuck.status.conditions if c.type == "PodScheduled"]
    assert cond.reason == "Unschedulable"
    assert "nvidia.com/gpu" in cond.message, cond.message


def test_pod_annotated_to_fail_reports_message_and_exit_code(kubectl, kube_api, namespace):
    from kubernetes import client

    message = '{"status": "gate-failed", "gate": "sft.loss"}'
    annotations = fake_pods.annotations(fake_pods.FAIL, duration="300ms", message=message, exit_code=3)
    kubectl("apply", "-n", namespace, "-f", "-", input=dump(pod("stage", annotations)))
    wait_phase(kubectl, namespace, "stage", "Failed")

    terminated = (
        client.CoreV1Api(kube_api).read_namespaced_pod("stage", namespace).status.container_statuses[0]
    )
    assert terminated.state.terminated.exit_code == 3
    assert terminated.state.terminated.reason == "Error"
    assert terminated.state.terminated.message == message


def test_pod_succeeds_with_its_termination_message(kubectl, kube_api, namespace):
    from kubernetes import client

    message = '{"status": "succeeded"}'
    kubectl(
        "apply", "-n", namespace, "-f", "-", input=dump(pod("ok", fake_pods.annotations(message=message)))
    )
    wait_phase(kubectl, namespace, "ok", "Succeeded")
    status = client.CoreV1Api(kube_api).read_namespaced_pod("ok", namespace).status.container_statuses[0]
    assert (status.state.terminated.exit_code, status.state.terminated.message) == (0, message)


# -- Kubeflow workloads (CRDs from the upstream Go modules; no Kubeflow controller runs) ------------
PYTORCHJOB = {
    "apiVersion": "kubeflow.org/v1",
    "kind": "PyTorchJob",
    "metadata": {"name": "sft"},
    "spec": {
        "pytorchReplicaSpecs": {
            "Master": {
                "replicas": 1,
                "restartPolicy": "OnFailure",
                "template": {"spec": {"containers": [{"name": "pytorch", "image": IMAGE}]}},
            },
            "Worker": {
                "replicas": 1,
                "restartPolicy": "OnFailure",
                "template": {"spec": {"containers": [{"name": "pytorch", "image": IMAGE}]}},
            },
        }
    },
}
TRAINJOB = {
    "apiVersion": "trainer.kubeflow.org/v1alpha1",
    "kind": "TrainJob",
    "metadata": {"name": "sft"},
    "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2, "image": IMAGE}},
}


def dry_run(kubectl, namespace: str, doc: dict[str, Any]):
    return kubectl("create", "-n", namespace, "--dry-run=server", "-f", "-", input=dump(doc), check=False)


@pytest.mark.parametrize("doc", [PYTORCHJOB, TRAINJOB], ids=["pytorchjob", "trainjob"])
def test_kubeflow_manifest_passes_server_side_validation(kubectl, namespace, doc):
    result = dry_run(kubectl, namespace, doc)
    assert result.returncode == 0, result.stderr


def test_invalid_kubeflow_manifests_are_refused(kubectl, namespace):
    no_replicas = copy.deepcopy(PYTORCHJOB)
    del no_replicas["spec"]["pytorchReplicaSpecs"]
    result = dry_run(kubectl, namespace, no_replicas)
    assert result.returncode != 0 and "spec.pytorchReplicaSpecs: Required value" in result.stderr, (
        result.stderr
    )

    foreign = copy.deepcopy(TRAINJOB)
    foreign["spec"]["managedBy"] = "example.com/other-controller"
    result = dry_run(kubectl, namespace, foreign)
    assert result.returncode != 0 and "spec.managedBy" in result.stderr, result.stderr
    assert "ManagedBy must be trainer.kubeflow.org/trainjob-controller" in result.stderr
