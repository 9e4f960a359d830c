"""Kubeflow's own controllers, built from their Go modules and run by `moa dev cluster up --with
trainer,training-operator`, run moa's GPU stages: a TrainJob goes TrainJob -> JobSet -> Job -> pod
(Trainer v2, JobSet, the Job controller; KWOK plays the pod), a PyTorchJob goes PyTorchJob -> pod
(the training-operator), and moa reads each stage's result from the pod and moves on to Ready.
What the API server holds, and what the controllers and their webhooks received, is what moa's
renderer produced."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import yaml
from conftest import given_kubeconfig
from test_operator import condition, get, summary_message, training, wait_for

from moa.api.stages import STAGES, stage
from moa.api.training import AdapterTraining
from moa.dev import controllers, fake_pods
from moa.dev.addons import resolve
from moa.dev.cluster import Cluster
from moa.operator.install import training_runtime
from moa.operator.workloads import Context, adapter_for
from moa.operator.workloads.trainjob import RUNTIME
from moa.pipeline.planner import Launch, workload_name

pytestmark = [pytest.mark.cluster, pytest.mark.controllers]

GPU_STAGES = [s.name for s in STAGES if s.gpu]
# What each simulated trainer pod reports in its termination message (the stage contract).
METRICS = {"seconds": 1.0, "marker": 17.0}


def start(config: pytest.Config, addon: str) -> None:
    """`up` the addon on the test cluster, or skip naming the build command."""
    if given_kubeconfig(config):
        pytest.skip("the Kubeflow addons run on moa's local control plane only (no --kubeconfig)")
    missing = [n for n in resolve([addon]) if not controllers.binary(n.name).is_file()]
    if missing and not os.environ.get("MOA_BUILD_CONTROLLERS"):
        pytest.skip(
            f"{', '.join(a.name for a in missing)} not built (cold build 13-40 min each on 2 cores): "
            f"run `moa dev cluster up --with {addon}` once, or set MOA_BUILD_CONTROLLERS=1"
        )
    Cluster(os.environ.get("MOA_TEST_CLUSTER", "moa")).up([addon])


@pytest.fixture
def reporting_runtime(kubectl: Callable[..., Any]) -> Iterator[None]:
    """moa's ClusterTrainingRuntime with KWOK's outcome annotations on its pod template. Trainer
    v2.0.0's TrainJob has no pod metadata, so per-training annotations cannot reach its pods; the
    runtime's pod template is the one place a simulated pod's termination message can come from."""
    runtime = training_runtime()
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    message = summary_message(GPU_STAGES[0], **METRICS)
    pod["metadata"] = {"annotations": fake_pods.annotations(duration="500ms", message=message)}
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(runtime))
    yield
    # As the addon installed it. A replace, not an apply: server-side apply removing the only
    # field under the pod template's metadata leaves `metadata: null`, which the schema refuses.
    kubectl("replace", "-f", "-", input=yaml.safe_dump(training_runtime()))


def gpu_training(name: str, backend: str) -> dict[str, Any]:
    doc = training(name)
    doc["spec"]["data"]["sources"] = doc["spec"]["data"]["sources"][:1]
    doc["spec"]["resources"].update(gpus=1, backend=backend)
    for st in GPU_STAGES:  # pods that do carry moa's annotations (PyTorchJob) report the same
        doc["spec"]["resources"]["podAnnotations"][st] = fake_pods.annotations(
            duration="500ms", message=summary_message(st, **METRICS)
        )
    return doc


def items(kubectl: Callable[..., Any], ns: str, kind: str, selector: str) -> list[dict[str, Any]]:
    return json.loads(kubectl("get", kind, "-n", ns, "-l", selector, "-o", "json").stdout)["items"]


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    """OBJ's controller is OWNER (kind and uid)."""
    return any(
        ref.get("controller") and ref["kind"] == owner["kind"] and ref["uid"] == owner["metadata"]["uid"]
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def rendered(kubectl: Callable[..., Any], ns: str, name: str, stage_name: str) -> dict[str, Any]:
    """What moa's renderer produces for the stage's first attempt of the live training."""
    live = get(kubectl, ns, "adaptertraining", name)
    model = AdapterTraining.model_validate(live)
    launch = Launch(stage_name, None, 1, workload_name(name, stage_name, None, 1))
    uid = live["metadata"]["uid"]
    ctx = Context(training=model, stage=stage(stage_name), launch=launch, namespace=ns, owner_uid=uid)
    return adapter_for(ctx.stage, model.spec).render(ctx)


def missing_from(live: Any, want: Any, at: str = "") -> list[str]:
    """Every path where LIVE lacks or differs from WANT (LIVE may add defaults WANT left out)."""
    if isinstance(want, dict):
        if not isinstance(live, dict):
            return [at or "."]
        return [p for k, v in want.items() for p in missing_from(live.get(k), v, f"{at}.{k}")]
    if isinstance(want, list):
        if not isinstance(live, list) or len(live) != len(want):
            return [at]
        return [
            p
            for i, (a, b) in enumerate(zip(live, want, strict=True))
            for p in missing_from(a, b, f"{at}[{i}]")
        ]
    return [] if live == want else [f"{at}: {live!r} != {want!r}"]


def assert_received_as_rendered(
    kubectl: Callable[..., Any], ns: str, name: str, workload: dict[str, Any]
) -> None:
    """The object the API server admitted (through the controller's validating webhook, registered
    with failurePolicy Fail: a refusal or an unreachable server would have failed the create) holds
    every field moa rendered, unchanged; the API server may only add its defaults."""
    want = rendered(kubectl, ns, name, workload["metadata"]["labels"]["moa.dev/stage"])
    assert workload["metadata"]["name"] == want["metadata"]["name"]
    assert missing_from(workload["spec"], want["spec"]) == []
    assert missing_from(workload["metadata"]["labels"], want["metadata"]["labels"]) == []
    assert workload["metadata"]["ownerReferences"] == want["metadata"]["ownerReferences"]


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def assert_result_read(
    kubectl: Callable[..., Any], ns: str, name: str, pods: dict[str, dict[str, Any]]
) -> None:
    """Ready, and each GPU stage's metrics and completion time are the ones its pod reported."""
    at = get(kubectl, ns, "adaptertraining", name)
    assert condition(at, "Ready").get("status") == "True", at.get("status")
    stages = {s["name"]: s for s in at["status"]["stages"]}
    for st in GPU_STAGES:
        assert stages[st]["state"] == "Succeeded" and stages[st]["metrics"] == METRICS, stages[st]
        ended = pods[st]["status"]["containerStatuses"][0]["state"]["terminated"]
        assert json.loads(ended["message"])["metrics"] == METRICS
        assert when(stages[st]["completionTime"]) == when(ended["finishedAt"])


def trainjob_pod(kubectl: Callable[..., Any], ns: str, trainjob: dict[str, Any]) -> dict[str, Any]:
    """TrainJob -> JobSet (Trainer v2) -> Job (JobSet) -> pod (the Job controller), each owned by
    the one before."""
    jobset = get(kubectl, ns, "jobsets.jobset.x-k8s.io", trainjob["metadata"]["name"])
    assert owned_by(jobset, trainjob)
    (job,) = items(kubectl, ns, "jobs", f"jobset.sigs.k8s.io/jobset-name={jobset['metadata']['name']}")
    assert owned_by(job, jobset)
    (pod,) = items(kubectl, ns, "pods", f"batch.kubernetes.io/job-name={job['metadata']['name']}")
    assert owned_by(pod, job)
    return pod


def pytorchjob_pod(kubectl: Callable[..., Any], ns: str, pytorchjob: dict[str, Any]) -> dict[str, Any]:
    """PyTorchJob -> its Master pod (the training-operator)."""
    name = pytorchjob["metadata"]["name"]
    (pod,) = items(kubectl, ns, "pods", f"training.kubeflow.org/job-name={name}")
    assert owned_by(pod, pytorchjob)
    return pod


# backend -> (addon, resource, its done condition, the walk from workload to pod)
BACKENDS = {
    "trainjob": ("trainer", "trainjobs.trainer.kubeflow.org", "Complete", trainjob_pod),
    "pytorchjob": ("training-operator", "pytorchjobs.kubeflow.org", "Succeeded", pytorchjob_pod),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_stages_run_through_kubeflows_controllers_and_moa_reads_their_results(
    backend: str,
    request: pytest.FixtureRequest,
    operator: Any,
    training_ns: str,
    kubectl: Callable[..., Any],
) -> None:
    ns, name = training_ns, backend
    addon, resource, done, walk = BACKENDS[backend]
    start(request.config, addon)
    if backend == "trainjob":
        request.getfixturevalue("reporting_runtime")
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(gpu_training(name, backend)))
    ready = kubectl(
        "wait", "--for=condition=Ready", f"adaptertraining/{name}", "-n", ns, "--timeout=300s", check=False
    )
    at = get(kubectl, ns, "adaptertraining", name)
    if ready.returncode != 0:  # say why: the status, and what the operator last logged as an error
        errors = [line for line in operator.log.read_text().splitlines() if '"level": "error"' in line]
        raise AssertionError(f"{name} not Ready: {at.get('status')}\n{errors[-1][-3000:] if errors else ''}")
    workloads = items(kubectl, ns, resource, f"moa.dev/training={name}")
    assert sorted(w["metadata"]["labels"]["moa.dev/stage"] for w in workloads) == sorted(GPU_STAGES)
    pods: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        assert owned_by(workload, at) and condition(workload, done).get("status") == "True"
        assert_received_as_rendered(kubectl, ns, name, workload)
        pod = walk(kubectl, ns, workload)
        assert pod["status"]["phase"] == "Succeeded"
        pods[workload["metadata"]["labels"]["moa.dev/stage"]] = pod
    assert_result_read(kubectl, ns, name, pods)


def test_a_trainjob_refused_by_trainers_webhook_stalls_the_training_saying_why_until_it_is_fixed(
    request: pytest.FixtureRequest, operator: Any, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    """Without moa's ClusterTrainingRuntime, the webhooks refuse every TrainJob: the training says
    so (Stalled, reason WorkloadRefused, the webhook's own words), never Failed; once the runtime
    is back, the next reconcile creates the TrainJob and the training reaches Ready."""
    ns, name = training_ns, "refused"
    start(request.config, "trainer")
    kubectl("delete", "clustertrainingruntime", RUNTIME)
    try:
        kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(gpu_training(name, "trainjob")))
        stalled = wait_for(
            lambda: (
                condition(get(kubectl, ns, "adaptertraining", name), "Stalled").get("reason")
                == "WorkloadRefused"
            ),
            timeout=180,
            what="Stalled WorkloadRefused",
        )
        at = get(kubectl, ns, "adaptertraining", name)
        message = condition(at, "Stalled")["message"]
        # Trainer's words, or Kueue's when it runs too (its TrainJob webhook also reads the runtime).
        assert stalled and f"stage {GPU_STAGES[0]}: TrainJob {name}-{GPU_STAGES[0]}-1 refused" in message
        assert RUNTIME in message and (
            "must be created before the TrainJob" in message or "not found" in message
        )
        assert at["status"].get("phase") != "Failed"
    finally:
        plain = yaml.safe_dump(training_runtime())
        kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=plain)
    kubectl("wait", "--for=condition=Ready", f"adaptertraining/{name}", "-n", ns, "--timeout=300s")
    assert condition(get(kubectl, ns, "adaptertraining", name), "Stalled").get("status") == "False"
