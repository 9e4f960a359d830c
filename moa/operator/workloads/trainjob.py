"""Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on moa's ClusterTrainingRuntime.

The runtime (`moa-trainer`, shipped in the install manifests) carries the restricted security
context; the TrainJob sets image, command, env and resources, and adds the artifact volume,
the stage config and scheduling through podSpecOverrides for its `node` job. Its pods are found by
the JobSet name label (JOBSET_NAME), not by moa's labels.

Rendered with Kubeflow's own models (`kubeflow-trainer-api`, the version matching Trainer
v2.0.0), so field names and shapes are upstream's; imported on first render only, since the
package loads every Kubernetes model it ships.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, observe_conditions
from moa.pipeline.planner import Attempt

RUNTIME = "moa-trainer"
NODE = "node"
# Trainer v2.0.0 names the JobSet after the TrainJob, and JobSet labels each pod with it; the
# TrainJob API has no pod metadata, so moa's own labels never reach the pods.
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"


class TrainJobAdapter:
    kind = "TrainJob"
    api_version = "trainer.kubeflow.org/v1alpha1"
    plural = "trainjobs"
    pod_label: str | None = JOBSET_NAME

    def render(self, ctx: Context) -> dict[str, Any]:
        from kubeflow_trainer_api import models as kf

        container = ctx.container(NODE)
        scheduling = ctx.scheduling()
        override = kf.TrainerV1alpha1PodSpecOverride(
            target_jobs=[kf.TrainerV1alpha1PodSpecOverrideTargetJob(name=NODE)],
            containers=[
                kf.TrainerV1alpha1ContainerOverride(
                    name=NODE,
                    volume_mounts=[
                        kf.IoK8sApiCoreV1VolumeMount.from_dict(m) for m in container["volumeMounts"]
                    ],
                )
            ],
            volumes=[kf.IoK8sApiCoreV1Volume.from_dict(v) for v in ctx.volumes()],
            node_selector=scheduling.get("nodeSelector"),
            tolerations=[kf.IoK8sApiCoreV1Toleration.from_dict(t) for t in scheduling.get("tolerations", [])]
            or None,
        )
        job = kf.TrainerV1alpha1TrainJob(
            api_version=self.api_version,
            kind=self.kind,
            metadata=kf.IoK8sApimachineryPkgApisMetaV1ObjectMeta.from_dict(ctx.metadata()),
            spec=kf.TrainerV1alpha1TrainJobSpec(
                runtime_ref=kf.TrainerV1alpha1RuntimeRef(
                    name=RUNTIME, api_group="trainer.kubeflow.org", kind="ClusterTrainingRuntime"
                ),
                labels=ctx.labels(),
                annotations=ctx.annotations(),
                trainer=kf.TrainerV1alpha1Trainer(
                    image=container["image"],
                    command=container["command"],
                    # Trainer's webhook refuses env in podSpecOverrides for its `node` container.
                    env=[kf.IoK8sApiCoreV1EnvVar.from_dict(e) for e in container["env"]],
                    num_nodes=1,
                    resources_per_node=kf.IoK8sApiCoreV1ResourceRequirements.from_dict(
                        container["resources"]
                    ),
                ),
                pod_spec_overrides=[override],
            ),
        )
        return job.to_dict()

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        return observe_conditions(self.kind, obj, pods, done="Complete")
