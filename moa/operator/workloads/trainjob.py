"""Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on moa's ClusterTrainingRuntime.

The runtime (`moa-trainer`, shipped in the install manifests) carries the restricted security
context; the TrainJob sets image, command and resources, and adds the artifact volume, the
stage config and scheduling through podSpecOverrides for its `node` job.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, attempt_from_pods
from moa.operator.workloads.job import condition
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

    def pod_selector(self, obj: dict[str, Any]) -> str:
        return f"jobset.sigs.k8s.io/jobset-name={obj['metadata']['name']}"

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        failed = condition(obj, "Failed")
        finished = True if condition(obj, "Complete") else (False if failed else None)
        reason = failed.get("message", "") if failed else ""
        return attempt_from_pods(
            obj["metadata"]["name"],
            self.kind,
            pods,
            finished,
            obj["metadata"].get("creationTimestamp"),
            reason,
        )
