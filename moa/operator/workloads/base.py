"""What every workload adapter shares: the labels that find a stage's workloads again, the
restricted pod template, and reading a stage's result from its pod's termination message.

Names and labels are deterministic (training, stage, shard, attempt), so a restarted operator
recognises the workloads it created and never creates a second one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from moa.api.stages import SANDBOX_POD_ENV, Stage, StageConfig, StageSummary
from moa.api.training import AdapterTraining, ConfigMapKeyRef, Egress
from moa.pipeline.planner import Attempt, Launch

LABEL_TRAINING = "moa.dev/training"
LABEL_STAGE = "moa.dev/stage"
LABEL_SHARD = "moa.dev/shard"  # a hash: sources are not valid label values
LABEL_ATTEMPT = "moa.dev/attempt"
LABEL_SANDBOX = "moa.dev/sandbox"
LABEL_QUEUE = "kueue.x-k8s.io/queue-name"
ANNOTATION_SHARD = "moa.dev/shard"  # the source itself
CONFIG_MOUNT = "/etc/moa/stage"
CA_MOUNT, CA_FILE = "/etc/moa/ca", "ca.crt"  # a stage's extra CA bundle (spec.network.*.caBundle)
TEACHER_KEY_ENV = "MOA_TEACHER_API_KEY"  # what the API teachers read (moa/datagen/teachers.py)
CONTAINER = "stage"


def shard_label(shard: str | None) -> str:
    return hashlib.sha256(shard.encode()).hexdigest()[:16] if shard else ""


@dataclass(frozen=True)
class Context:
    """Everything needed to render one workload of one stage attempt."""

    training: AdapterTraining
    stage: Stage
    launch: Launch
    namespace: str
    owner_uid: str

    @property
    def spec(self) -> Any:
        return self.training.spec

    @property
    def name(self) -> str:
        return self.launch.name

    def config(self) -> StageConfig:
        return StageConfig.for_training(self.training, self.stage.name, shard=self.launch.shard)

    def labels(self) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": "moa",
            "app.kubernetes.io/component": self.stage.name,
            "app.kubernetes.io/managed-by": "moa-operator",
            LABEL_TRAINING: self.training.metadata.name,
            LABEL_STAGE: self.stage.name,
            LABEL_ATTEMPT: str(self.launch.attempt),
        }
        if self.launch.shard:
            labels[LABEL_SHARD] = shard_label(self.launch.shard)
        if self.stage.sandboxed:
            labels[LABEL_SANDBOX] = "true"
        return labels

    def annotations(self) -> dict[str, str]:
        out = {ANNOTATION_SHARD: self.launch.shard} if self.launch.shard else {}
        pod_annotations = self.spec.resources.pod_annotations
        out.update(pod_annotations.get("all", {}))
        out.update(pod_annotations.get(self.stage.name, {}))
        return out

    def metadata(self, **extra_labels: str) -> dict[str, Any]:
        queue = self.spec.resources.queue_name
        return {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {
                **self.labels(),
                **({LABEL_QUEUE: queue} if queue and self.stage.gpu else {}),
                **extra_labels,
            },
            "annotations": {ANNOTATION_SHARD: self.launch.shard} if self.launch.shard else {},
            "ownerReferences": [owner_reference(self.training, self.owner_uid)],
        }

    def config_map(self) -> dict[str, Any]:
        """The stage's `--config` file, one ConfigMap per workload, owned by the training."""
        meta = self.metadata()
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"stage.yaml": self.config().dump()},
        }

    def image(self) -> str:
        images = self.spec.resources.images
        if not self.stage.gpu:
            toolchain = self.stage.sandboxed or self.stage.toolchain
            return str(images.sandbox_for(self.spec.language) if toolchain else images.operator)
        return str(images.trainer)

    def egress(self) -> Egress | None:
        """The spec's egress for this stage's pod; None: it may reach nothing."""
        if self.stage.network == "registries":
            return self.spec.network.fetch
        if self.stage.network == "teacher" and self.spec.data.teacher.kind != "oracle":
            return self.spec.network.teacher
        return None

    def network_env(self) -> list[dict[str, Any]]:
        """The proxy and CA bundle of a stage with egress, and the teacher's key for the pod that calls it."""
        env: list[dict[str, Any]] = []
        egress = self.egress()
        if egress is not None and egress.proxy:
            env += [
                {"name": n, "value": egress.proxy}
                for n in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")
            ]
        if self.ca_bundle():
            env.append({"name": "SSL_CERT_FILE", "value": f"{CA_MOUNT}/{CA_FILE}"})
        teacher = self.spec.data.teacher
        if self.stage.network == "teacher" and teacher.kind != "oracle" and teacher.secret_ref:
            ref = teacher.secret_ref
            env.append(
                {"name": TEACHER_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            )
        return env

    def container(self, name: str = CONTAINER) -> dict[str, Any]:
        res = self.spec.resources
        if self.stage.gpu:
            limits = {"cpu": res.cpu, "memory": res.memory}
            if res.gpus:
                limits["nvidia.com/gpu"] = str(res.gpus)
        else:
            limits = {"cpu": res.sandbox.cpu, "memory": res.sandbox.memory}
        limits["ephemeral-storage"] = "20Gi"
        return {
            "name": name,
            "image": self.image(),
            "command": ["moa", *self.stage.command, "--config", f"{CONFIG_MOUNT}/stage.yaml"],
            "env": [
                {"name": "MOA_TERMINATION_LOG", "value": "/dev/termination-log"},
                {"name": "HOME", "value": "/tmp"},
                # Tool installs, fetched sources and prepared trees live on the shared volume, so
                # every stage pod (and every retry) reuses them instead of starting cold.
                {"name": "MOA_CACHE", "value": f"{self.spec.storage.root}/cache"},
                # Untrusted code runs inside this pod's own boundary (see moa.languages.sandbox).
                {"name": SANDBOX_POD_ENV, "value": "1"},
                *self.network_env(),
            ],
            "resources": {"requests": dict(limits), "limits": dict(limits)},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "volumeMounts": [
                {"name": "artifacts", "mountPath": self.spec.storage.root},
                {"name": "stage-config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
                *(
                    [{"name": "ca-bundle", "mountPath": CA_MOUNT, "readOnly": True}]
                    if self.ca_bundle()
                    else []
                ),
            ],
        }

    def ca_bundle(self) -> ConfigMapKeyRef | None:
        """The extra CA certificates this stage's pod trusts (only stages with egress have any)."""
        egress = self.egress()
        return egress.ca_bundle if egress is not None else None

    def volumes(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": artifacts_claim(self.training)}},
            {"name": "stage-config", "configMap": {"name": self.name}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "10Gi"}},
        ]
        ref = self.ca_bundle()
        if ref is not None:
            out.append(
                {
                    "name": "ca-bundle",
                    "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": CA_FILE}]},
                }
            )
        return out

    def scheduling(self) -> dict[str, Any]:
        """nodeSelector and tolerations of a GPU stage (the GPU taint tolerated when it asks for GPUs)."""
        res = self.spec.resources
        if not self.stage.gpu:
            return {}
        out: dict[str, Any] = {}
        if res.node_selector:
            out["nodeSelector"] = dict(res.node_selector)
        tolerations = [t.to_yaml_dict() for t in res.tolerations]
        if res.gpus:
            tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
        if tolerations:
            out["tolerations"] = tolerations
        return out

    def pod_spec(self, container: str = CONTAINER) -> dict[str, Any]:
        """A pod spec that passes Pod Security `restricted`; sandboxed stages get the extra limits."""
        res = self.spec.resources
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [self.container(container)],
            "volumes": self.volumes(),
            **self.scheduling(),
        }
        if self.stage.sandboxed:
            if res.sandbox.runtime_class_name:
                spec["runtimeClassName"] = res.sandbox.runtime_class_name
            timeouts = self.spec.data.limits.timeouts
            spec["activeDeadlineSeconds"] = timeouts.source_seconds
        return spec

    def pod_template(self, container: str = CONTAINER) -> dict[str, Any]:
        return {
            "metadata": {"labels": self.labels(), "annotations": self.annotations()},
            "spec": self.pod_spec(container),
        }


def artifacts_claim(training: AdapterTraining) -> str:
    return training.spec.storage.claim_name or f"{training.metadata.name}-artifacts"


def owner_reference(training: AdapterTraining, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": training.api_version,
        "kind": training.kind,
        "name": training.metadata.name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": False,  # deletion must never wait on the operator
    }


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    """The stage container's terminated state, if it has one."""
    for cs in pod.get("status", {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER or len(pod.get("status", {}).get("containerStatuses") or []) == 1:
            state = cs.get("state", {}).get("terminated")
            if state:
                return dict(state)
    return None


def summary_from(state: dict[str, Any] | None) -> StageSummary | None:
    """The stage contract's compact JSON in the termination message (absent or not ours: None)."""
    if not state or not state.get("message"):
        return None
    try:
        return StageSummary.model_validate(json.loads(state["message"]))
    except (ValueError, TypeError):
        return None


def attempt_from_pods(
    name: str, kind: str, pods: list[dict[str, Any]], finished: bool | None, created: Any, reason: str = ""
) -> Attempt:
    """Turn a workload's pods into an Attempt. `finished`: None running, True succeeded, False failed."""
    last = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
    state = terminated(last) if last else None
    summary = summary_from(state)
    started = _time(created)
    if finished is None:
        return Attempt("running", started_at=started, workload=name, workload_kind=kind)
    ended = _time(state.get("finishedAt")) if state else None
    if finished:
        return Attempt("succeeded", started, ended, summary=summary, workload=name, workload_kind=kind)
    code = state.get("exitCode") if state else None
    if code == 3 or (summary is not None and summary.status == "gate_failed"):
        return Attempt("gate_failed", started, ended, summary=summary, workload=name, workload_kind=kind)
    detail = (summary.message if summary else "") or (state.get("message", "") if state else "") or reason
    message = f"exit code {code}: {detail}".strip() if code is not None else detail or "failed"
    return Attempt(
        "failed",
        started,
        ended or _time(created),
        message=message[:2000],
        summary=summary,
        workload=name,
        workload_kind=kind,
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    """The workload's condition of this type when it is True."""
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


QUEUED = "queued: suspended until its queue admits it (Kueue)"


def observe_conditions(kind: str, obj: dict[str, Any], pods: list[dict[str, Any]], done: str) -> Attempt:
    """For controllers that report `done` / `Failed` / `Suspended` conditions (Job, PyTorchJob,
    TrainJob). A suspended workload waits for admission: pending, never failed."""
    failed = condition(obj, "Failed")
    finished = True if condition(obj, done) else (False if failed else None)
    if finished is None and condition(obj, "Suspended"):
        name, created = obj["metadata"]["name"], _time(obj["metadata"].get("creationTimestamp"))
        return Attempt("pending", started_at=created, message=QUEUED, workload=name, workload_kind=kind)
    reason = (
        ": ".join(x for x in (failed.get("reason", ""), failed.get("message", "")) if x) if failed else ""
    )
    return attempt_from_pods(
        obj["metadata"]["name"], kind, pods, finished, obj["metadata"].get("creationTimestamp"), reason
    )


class WorkloadAdapter(Protocol):
    """One workload kind: how to render it for a stage and how to read its outcome."""

    kind: str
    api_version: str
    plural: str
    # None: its pods carry moa's labels (their template is moa's). Else the label whose value
    # names the workload on its pods, for controllers that build the pod template themselves.
    pod_label: str | None

    def render(self, ctx: Context) -> dict[str, Any]: ...

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt: ...
