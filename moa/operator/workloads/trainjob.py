"""Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on moa's ClusterTrainingRuntime.

The runtime (`moa-trainer`, shipped in the install manifests) carries the restricted security
context; the TrainJob sets image, command and resources, and adds the artifact volume, the
stage config and scheduling through podSpecOverrides for its `node` job.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, observe_conditions
from moa.pipeline.planner import Attempt

RUNTIME = "moa-trainer"
NODE = "node"


class TrainJobAdapter:
    kind = "TrainJob"
    api_version = "trainer.kubeflow.org/v1alpha1"
    plural = "trainjobs"

    def render(self, ctx: Context) -> dict[str, Any]:
        container = ctx.container(NODE)
        override: dict[str, Any] = {
            "targetJobs": [{"name": NODE}],
            "containers": [
                {"name": NODE, "volumeMounts": container["volumeMounts"], "env": container["env"]}
            ],
            "volumes": ctx.volumes(),
            **ctx.scheduling(),
        }
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": ctx.metadata(),
            "spec": {
                "runtimeRef": {
                    "name": RUNTIME,
                    "apiGroup": "trainer.kubeflow.org",
                    "kind": "ClusterTrainingRuntime",
                },
                "labels": ctx.labels(),
                "annotations": ctx.annotations(),
                "trainer": {
                    "image": container["image"],
                    "command": container["command"],
                    "numNodes": 1,
                    "resourcesPerNode": container["resources"],
                },
                "podSpecOverrides": [override],
            },
        }

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        return observe_conditions(self.kind, obj, pods, done="Complete")
