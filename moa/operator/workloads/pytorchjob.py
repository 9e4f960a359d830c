"""Kubeflow PyTorchJob (kubeflow.org/v1): one Master replica running the stage command.

The training operator requires the container to be named `pytorch`.

Rendered as a plain dict, not with Kubeflow's models as TrainJob is: the package that ships the
PyTorchJob models (`kubeflow-training`, last release 1.9.4) requires `kubernetes<36`, and moa
runs on 37 (the client of the Kubernetes version its control plane tests against). The
cluster tests check what the training-operator's webhook admits against this renderer's output.
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
