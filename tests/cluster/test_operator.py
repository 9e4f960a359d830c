"""The operator on the live control plane: KWOK pods play each stage, their annotations choose
the outcome (and the stage-contract termination message), and the real Job controller,
scheduler and garbage collector do the rest."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import OperatorProcess

from moa.api.adapter import Published
from moa.api.gates import check
from moa.api.stages import STAGE_NAMES, STAGES, StageSummary
from moa.dev import fake_pods
from moa.operator.main import informer_cache
from moa.operator.reconcile import reconcile

pytestmark = pytest.mark.cluster

SOURCES = ["pypi:six@1.16.0", "pypi:idna@3.7"]
# One workload per stage, one per source for the stages that fan out (fetch and mutate).
WORKLOADS = sum(len(SOURCES) if stage.fan_out else 1 for stage in STAGES)


# What a real eval pod reports having published (the operator cannot read the volume: it trusts this).
REPORTED = Published(
    artifact="checkpoints/adapters/published/py-coding@0123456789abcdef", digest="sha256:" + "ab" * 32
)


def summary_message(stage: str, **metrics: float) -> str:
    published = REPORTED if stage == "eval" else None
    return StageSummary(stage=stage, status="succeeded", metrics=metrics, published=published).compact()  # type: ignore[arg-type]


def training(
    name: str, duration: str = "300ms", stages: dict[str, dict[str, str]] | None = None, **spec: Any
) -> dict[str, Any]:
    """An AdapterTraining whose every stage pod reports metrics like the real stage would."""
    annotations = {
        st: fake_pods.annotations(duration=duration, message=summary_message(st, seconds=1.0, index=float(i)))
        for i, st in enumerate(STAGE_NAMES)
    }
    annotations.update(stages or {})
    body = {
        "language": "python",
        "storage": {"claimName": "artifacts"},
        "data": {"sources": SOURCES},
        "backoffSeconds": 1,
        "maxAttempts": 2,
        "resources": {"podAnnotations": annotations},
    }
    body.update(spec)
    return {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": name},
        "spec": body,
    }


def get(kubectl: Callable[..., Any], ns: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)


def wait_for(predicate: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def workloads(kubectl: Callable[..., Any], ns: str, name: str) -> list[str]:
    """Every workload the operator created for a training (bare pods and Jobs)."""
    sel = f"moa.dev/training={name}"
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", sel, "-o", "json").stdout)["items"]
    jobs = json.loads(kubectl("get", "jobs", "-n", ns, "-l", sel, "-o", "json").stdout)["items"]
    bare = [
        p["metadata"]["name"]
        for p in pods
        if all(o["kind"] == "AdapterTraining" for o in p["metadata"].get("ownerReferences", []))
    ]
    return sorted(bare + [j["metadata"]["name"] for j in jobs])


def test_sample_runs_every_stage_to_ready_and_creates_an_adapter(
    operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any], kube_api: Any
) -> None:
    ns = training_ns
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(training("py")))
    kubectl("wait", "--for=condition=Ready", "adaptertraining/py", "-n", ns, "--timeout=120s")
    at = get(kubectl, ns, "adaptertraining", "py")
    assert at["status"]["phase"] == "Succeeded" and at["status"]["observedGeneration"] == 1
    assert "stage" not in at["status"]
    stages = {s["name"]: s for s in at["status"]["stages"]}
    assert list(stages) == list(STAGE_NAMES) and all(s["state"] == "Succeeded" for s in stages.values())
    assert stages["sft"]["metrics"]["index"] == STAGE_NAMES.index("sft")  # read from the termination message
    assert stages["mutate"]["metrics"]["seconds"] == 2.0  # summed over the two source shards
    assert stages["sft"]["workload"]["kind"] == "Job" and stages["trajectories"]["workload"]["kind"] == "Pod"
    adapter = get(kubectl, ns, "adapter", at["status"]["adapter"]["name"])
    assert adapter["spec"]["stage"] == "trained" and adapter["status"]["stage"] == "trained"
    assert adapter["status"]["metrics"]["index"] == STAGE_NAMES.index("eval")
    assert (adapter["spec"]["artifact"], adapter["spec"]["digest"]) == (REPORTED.artifact, REPORTED.digest)
    events = kubectl(
        "get", "events", "-n", ns, "--field-selector", "involvedObject.name=py", "-o", "json"
    ).stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"StageStarted", "AdapterCreated"} <= reasons

    # Reconciling the finished training again, from an informer cache like the operator's, makes
    # no API request once the process has checked its namespace objects (the first pass).
    kube = informer_cache(kube_api)
    kube.relist([ns])
    reconcile(kube, ns, "py")
    before = kube.thread_requests()
    outcome = reconcile(kube, ns, "py")
    assert outcome.idle and kube.thread_requests() == before
    # Sandboxed stages were admitted by Pod Security `restricted` and kept off GPU nodes.
    pods = json.loads(kubectl("get", "pods", "-n", ns, "-l", "moa.dev/sandbox=true", "-o", "json").stdout)[
        "items"
    ]
    assert pods and all(p["spec"]["automountServiceAccountToken"] is False for p in pods)
    bare = [p for p in pods if p["metadata"]["ownerReferences"][0]["kind"] == "AdapterTraining"]
    assert bare and {p["spec"]["nodeName"].startswith("moa-cpu") for p in bare} == {True}
    gpu = [p for p in pods if p["metadata"]["labels"]["moa.dev/stage"] == "grpo"]
    assert gpu and gpu[0]["spec"]["nodeName"].startswith("moa-gpu")  # GPU stages land on the GPU pool
    assert len(workloads(kubectl, ns, "py")) == WORKLOADS


def test_failing_gate_stalls_with_gate_value_and_threshold(
    operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    gate = check("sft.loss", 0.91, "<", 0.5)
    message = StageSummary(stage="sft", status="gate_failed", gates=[gate], metrics={"loss": 0.91}).compact()
    sft = fake_pods.annotations(outcome=fake_pods.FAIL, duration="300ms", message=message, exit_code=3)
    kubectl(
        "apply", "-n", training_ns, "-f", "-", input=yaml.safe_dump(training("gated", stages={"sft": sft}))
    )
    kubectl("wait", "--for=condition=Stalled", "adaptertraining/gated", "-n", training_ns, "--timeout=120s")
    at = get(kubectl, training_ns, "adaptertraining", "gated")
    stalled = condition(at, "Stalled")
    assert stalled["reason"] == "GateFailed" and "sft.loss: 0.91 < 0.5 failed" in stalled["message"]
    assert condition(at, "SftGatesPassed")["status"] == "False"
    assert at["status"]["phase"] == "Failed"
    assert not [w for w in workloads(kubectl, training_ns, "gated") if "-ipo-" in w]  # nothing after the gate
    assert (
        len([w for w in workloads(kubectl, training_ns, "gated") if "-sft-" in w]) == 1
    )  # a gate is not retried


def test_failing_pod_is_retried_with_backoff_then_fails_with_the_reason(
    operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    ipo = fake_pods.annotations(
        outcome=fake_pods.FAIL, duration="300ms", message="CUDA out of memory", exit_code=1
    )
    kubectl(
        "apply",
        "-n",
        training_ns,
        "-f",
        "-",
        input=yaml.safe_dump(training("flaky", stages={"ipo": ipo}, backoffSeconds=2)),
    )
    kubectl("wait", "--for=condition=Stalled", "adaptertraining/flaky", "-n", training_ns, "--timeout=120s")
    at = get(kubectl, training_ns, "adaptertraining", "flaky")
    stalled = condition(at, "Stalled")
    assert stalled["reason"] == "AttemptsExhausted" and "CUDA out of memory" in stalled["message"]
    assert [w for w in workloads(kubectl, training_ns, "flaky") if "-ipo-" in w] == [
        "flaky-ipo-1",
        "flaky-ipo-2",
    ]
    jobs = {n: get(kubectl, training_ns, "job", n) for n in ("flaky-ipo-1", "flaky-ipo-2")}
    first_end = jobs["flaky-ipo-1"]["status"]["conditions"][-1]["lastTransitionTime"]
    second_start = jobs["flaky-ipo-2"]["metadata"]["creationTimestamp"]
    assert second_start > first_end  # created after the first failed, not alongside
    ipo_status = next(s for s in at["status"]["stages"] if s["name"] == "ipo")
    assert ipo_status["attempts"] == 2 and ipo_status["state"] == "Failed"


@pytest.mark.parametrize("victim", ["trajectories", "sft"])  # a bare sandbox Pod stage, a Job stage
def test_sigkilled_operator_resumes_without_duplicates_or_lost_results(
    victim: str, operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    slow = fake_pods.annotations(duration="6s", message=summary_message(victim, seconds=6.0, index=99.0))
    kubectl(
        "apply", "-n", training_ns, "-f", "-", input=yaml.safe_dump(training("crash", stages={victim: slow}))
    )
    wait_for(
        lambda: any(f"-{victim}-" in w for w in workloads(kubectl, training_ns, "crash")),
        what=f"{victim} workload",
    )
    operator.kill()
    time.sleep(7)  # the stage finishes while no operator is running
    operator.start()
    kubectl("wait", "--for=condition=Ready", "adaptertraining/crash", "-n", training_ns, "--timeout=120s")
    names = workloads(kubectl, training_ns, "crash")
    assert len(names) == len(set(names)) == WORKLOADS, names
    at = get(kubectl, training_ns, "adaptertraining", "crash")
    stages = {s["name"]: s for s in at["status"]["stages"]}
    assert stages[victim]["metrics"]["index"] == 99.0 and stages[victim]["attempts"] == 1


def test_after_orders_two_languages(
    operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    first = training("python-first", duration="1s")
    second = training("ts-second", after=["python-first"])
    second["spec"]["language"] = "typescript"
    kubectl("apply", "-n", training_ns, "-f", "-", input=yaml.safe_dump_all([second, first]))
    wait_for(
        lambda: (
            get(kubectl, training_ns, "adaptertraining", "ts-second").get("status", {}).get("phase")
            == "Waiting"
        ),
        what="Waiting",
    )
    assert workloads(kubectl, training_ns, "ts-second") == []
    kubectl(
        "wait", "--for=condition=Ready", "adaptertraining/python-first", "-n", training_ns, "--timeout=120s"
    )
    kubectl("wait", "--for=condition=Ready", "adaptertraining/ts-second", "-n", training_ns, "--timeout=120s")
    done_first = get(kubectl, training_ns, "adaptertraining", "python-first")["status"]["stages"][-1][
        "completionTime"
    ]
    started_second = get(kubectl, training_ns, "adaptertraining", "ts-second")["status"]["stages"][0][
        "startTime"
    ]
    assert started_second >= done_first


def test_suspend_holds_and_resumes_and_deletion_needs_no_operator(
    operator: OperatorProcess, training_ns: str, kubectl: Callable[..., Any]
) -> None:
    kubectl("apply", "-n", training_ns, "-f", "-", input=yaml.safe_dump(training("held", suspend=True)))
    wait_for(
        lambda: (
            get(kubectl, training_ns, "adaptertraining", "held").get("status", {}).get("phase") == "Suspended"
        ),
        what="Suspended",
    )
    assert workloads(kubectl, training_ns, "held") == []
    kubectl(
        "patch",
        "adaptertraining",
        "held",
        "-n",
        training_ns,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    kubectl("wait", "--for=condition=Ready", "adaptertraining/held", "-n", training_ns, "--timeout=120s")
    assert get(kubectl, training_ns, "adaptertraining", "held")["status"]["observedGeneration"] == 2
    # With the operator down, deletion completes (no finalizers) and the GC removes the workloads.
    operator.stop()
    assert "finalizers" not in get(kubectl, training_ns, "adaptertraining", "held")["metadata"]
    kubectl("delete", "adaptertraining", "held", "-n", training_ns, "--timeout=30s")
    wait_for(lambda: workloads(kubectl, training_ns, "held") == [], timeout=60, what="garbage collection")
