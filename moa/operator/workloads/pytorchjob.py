"""Kubeflow PyTorchJob (kubeflow.org/v1): one Master replica running the stage command.

The training operator requires the container to be named `pytorch`.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, observe_conditions
from moa.pipeline.planner import Attempt


class PyTorchJobAdapter:
    kind = "PyTorchJob"
    api_version = "kubeflow.org/v1"
    plural = "pytorchjobs"
    pod_label: str | None = None

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

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        return observe_conditions(self.kind, obj, pods, done="Succeeded")
