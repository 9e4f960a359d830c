"""Workload adapters: what they render for a stage, and how they read a workload's outcome."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from moa.api.gates import check
from moa.api.stages import StageConfig, StageSummary, stage
from moa.api.training import AdapterTraining
from moa.operator.workloads import ADAPTERS, Context, adapter_for
from moa.pipeline.planner import Launch, workload_name


def training(**resources: Any) -> AdapterTraining:
    return AdapterTraining.model_validate(
        {
            "metadata": {"name": "rust", "namespace": "ml"},
            "spec": {
                "language": "rust",
                "data": {"sources": ["crates:bstr@1.10.0"]},
                "resources": {"nodeSelector": {"pool": "h200"}, **resources},
            },
        }
    )


def ctx(t: AdapterTraining, stage_name: str, shard: str | None = None, attempt: int = 1) -> Context:
    launch = Launch(stage_name, shard, attempt, workload_name("rust", stage_name, shard, attempt))
    return Context(training=t, stage=stage(stage_name), launch=launch, namespace="ml", owner_uid="uid-1")


def pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    kind = obj["kind"]
    if kind == "Pod":
        return [obj["spec"]]
    if kind == "Job":
        return [obj["spec"]["template"]["spec"]]
    if kind == "PyTorchJob":
        return [obj["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]]
    raise AssertionError(kind)


def assert_restricted(spec: dict[str, Any]) -> None:
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert c["resources"]["requests"] == c["resources"]["limits"]


def test_mutation_shard_is_a_sandboxed_restricted_pod() -> None:
    t = training()
    c = ctx(t, "mutate", shard="crates:bstr@1.10.0")
    obj = adapter_for(c.stage, t.spec).render(c)
    assert obj["kind"] == "Pod" and obj["metadata"]["labels"]["moa.dev/sandbox"] == "true"
    assert obj["metadata"]["annotations"]["moa.dev/shard"] == "crates:bstr@1.10.0"
    spec = obj["spec"]
    assert_restricted(spec)
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] > 0
    assert "nodeSelector" not in spec and "tolerations" not in spec  # CPU work stays off GPU nodes
    assert spec["containers"][0]["command"] == [
        "moa",
        "datagen",
        "mutate",
        "--config",
        "/etc/moa/stage/stage.yaml",
    ]
    tmp = next(v for v in spec["volumes"] if v["name"] == "tmp")
    assert tmp["emptyDir"]["sizeLimit"]
    assert obj["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is False


def test_config_map_carries_the_stage_config() -> None:
    c = ctx(training(), "sft")
    cm = c.config_map()
    config = StageConfig.model_validate(yaml.safe_load(cm["data"]["stage.yaml"]))
    assert config.stage == "sft" and config.name == "rust" and config.spec.language == "rust"


@pytest.mark.parametrize("backend", ["job", "pytorchjob"])
def test_gpu_stage_uses_the_backend_with_gpus_and_scheduling(backend: str) -> None:
    t = training(backend=backend, gpus=2, queueName="team-a")
    c = ctx(t, "sft")
    obj = adapter_for(c.stage, t.spec).render(c)
    assert obj["kind"] == {"job": "Job", "pytorchjob": "PyTorchJob"}[backend]
    assert obj["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "suspend" not in json.dumps(obj["spec"])  # Kueue owns suspend
    (spec,) = pod_specs(obj)
    assert_restricted(spec)
    assert spec["nodeSelector"] == {"pool": "h200"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    if backend == "pytorchjob":
        assert spec["containers"][0]["name"] == "pytorch"


def test_trainjob_references_the_moa_runtime_and_overrides_volumes() -> None:
    t = training(backend="trainjob", gpus=1)
    c = ctx(t, "grpo")
    obj = ADAPTERS["TrainJob"].render(c)
    assert obj["spec"]["runtimeRef"]["name"] == "moa-trainer"
    assert obj["spec"]["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "1"
    override = obj["spec"]["podSpecOverrides"][0]
    assert {v["name"] for v in override["volumes"]} == {"artifacts", "stage-config", "tmp"}
    # Trainer v2.0.0's webhook refuses env overrides for the `node` container: env goes in trainer.
    assert "MOA_TERMINATION_LOG" in {e["name"] for e in obj["spec"]["trainer"]["env"]}
    assert all("env" not in container for container in override["containers"])


def _job(conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "rust-sft-1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"conditions": conditions},
    }


def _pod(exit_code: int, message: str = "") -> dict[str, Any]:
    term = {"exitCode": exit_code, "message": message, "finishedAt": "2026-01-01T00:10:00Z"}
    return {
        "metadata": {"name": "rust-sft-1-abc", "creationTimestamp": "2026-01-01T00:00:01Z"},
        "status": {"containerStatuses": [{"name": "stage", "state": {"terminated": term}}]},
    }


def test_job_observation_reads_the_stage_summary_from_the_termination_message() -> None:
    job = ADAPTERS["Job"]
    summary = StageSummary(stage="sft", status="succeeded", metrics={"loss": 0.3})
    done = job.observe(_job([{"type": "Complete", "status": "True"}]), [_pod(0, summary.compact())])
    assert done.state == "succeeded" and done.summary is not None and done.summary.metrics == {"loss": 0.3}
    assert job.observe(_job([]), []).state == "running"
    gated = StageSummary(stage="sft", status="gate_failed", gates=[check("sft.loss", 0.9, "<", 0.5)])
    failed = job.observe(
        _job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
        [_pod(3, gated.compact())],
    )
    assert failed.state == "gate_failed" and failed.summary is not None and not failed.summary.gates[0].passed
    crash = job.observe(_job([{"type": "Failed", "status": "True"}]), [_pod(137, "OOMKilled")])
    assert crash.state == "failed" and "137" in crash.message and "OOMKilled" in crash.message


def _succeeded(pod: dict[str, Any]) -> dict[str, Any]:
    pod["status"]["phase"] = "Succeeded"
    return pod


def test_a_jobs_succeeded_pod_with_its_result_finishes_the_stage_before_the_job_is_complete() -> None:
    job = ADAPTERS["Job"]
    spec = job.render(ctx(training(), "sft"))["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 0)  # one pod
    summary = StageSummary(stage="sft", status="succeeded", metrics={"loss": 0.3})
    early = job.observe(_job([]), [_succeeded(_pod(0, summary.compact()))])
    assert early.state == "succeeded" and early.summary is not None and early.summary.metrics == {"loss": 0.3}
    assert early.workload == "rust-sft-1" and early.finished_at is not None
    # the Job's own verdict, when it comes, says the same
    late = job.observe(
        _job([{"type": "Complete", "status": "True"}]), [_succeeded(_pod(0, summary.compact()))]
    )
    assert (late.state, late.summary, late.finished_at) == (early.state, early.summary, early.finished_at)


def test_only_a_readable_success_short_cuts_the_job_controller() -> None:
    job = ADAPTERS["Job"]
    # succeeded without a result the stage contract can read: wait for the Job's condition
    assert job.observe(_job([]), [_succeeded(_pod(0, ""))]).state == "running"
    assert job.observe(_job([]), [_succeeded(_pod(0, "not json"))]).state == "running"
    # a failed pod goes through the Job's own backoff: running until the Job says Failed
    failed_pod = _pod(1, StageSummary(stage="sft", status="failed", message="boom").compact())
    failed_pod["status"]["phase"] = "Failed"
    assert job.observe(_job([]), [failed_pod]).state == "running"
    # a Job the controller already failed is failed, whatever a pod says
    ok = _succeeded(_pod(0, StageSummary(stage="sft", status="succeeded").compact()))
    assert job.observe(_job([{"type": "Failed", "status": "True"}]), [ok]).state == "failed"


@pytest.mark.parametrize("kind", ["Job", "PyTorchJob", "TrainJob"])
def test_a_suspended_workload_is_pending_in_its_queue_never_failed(kind: str) -> None:
    suspended = _job([{"type": "Suspended", "status": "True", "reason": "JobSuspended"}])
    attempt = ADAPTERS[kind].observe(suspended, [])
    assert attempt.state == "pending" and attempt.message.startswith("queued")
    resumed = _job([{"type": "Suspended", "status": "False", "reason": "JobResumed"}])
    assert ADAPTERS[kind].observe(resumed, []).state == "running"


def test_trainjob_is_rendered_through_kubeflows_own_model_without_losing_a_field() -> None:
    from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

    t = training(backend="trainjob", gpus=2, nodeSelector={"pool": "gpu"})
    rendered = ADAPTERS["TrainJob"].render(ctx(t, "sft"))
    assert TrainerV1alpha1TrainJob.from_dict(rendered).to_dict() == rendered  # type: ignore[union-attr]
