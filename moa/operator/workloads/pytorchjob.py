"""Kubeflow PyTorchJob (kubeflow.org/v1): one Master replica running the stage command.

The training operator requires the container to be named `pytorch`.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, attempt_from_pods
from moa.operator.workloads.job import condition
from moa.pipeline.planner import Attempt


class PyTorchJobAdapter:
    kind = "PyTorchJob"
    api_version = "kubeflow.org/v1"
    plural = "pytorchjobs"

    def render(self, ctx: Context) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": ctx.metadata(),
            "spec": {
                "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"},
                "pytorchReplicaSpecs": {
                    "Master": {
                        "replicas": 1,
                        "restartPolicy": "Never",
                        "template": ctx.pod_template("pytorch"),
                    }
                },
            },
        }

    def pod_selector(self, obj: dict[str, Any]) -> str:
        return f"training.kubeflow.org/job-name={obj['metadata']['name']}"

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        failed = condition(obj, "Failed")
        finished = True if condition(obj, "Succeeded") else (False if failed else None)
        reason = failed.get("message", "") if failed else ""
        return attempt_from_pods(
            obj["metadata"]["name"],
            self.kind,
            pods,
            finished,
            obj["metadata"].get("creationTimestamp"),
            reason,
        )
