"""Workload adapters, one per kind, and the choice of kind for a stage.

CPU stages run as sandboxed bare Pods; GPU stages use the spec's training backend.
"""

from __future__ import annotations

from moa.api.stages import Stage
from moa.api.training import AdapterTrainingSpec
from moa.operator.workloads.base import Context, WorkloadAdapter
from moa.operator.workloads.job import JobAdapter
from moa.operator.workloads.pod import PodAdapter
from moa.operator.workloads.pytorchjob import PyTorchJobAdapter
from moa.operator.workloads.trainjob import TrainJobAdapter

ADAPTERS: dict[str, WorkloadAdapter] = {
    "Pod": PodAdapter(),
    "Job": JobAdapter(),
    "PyTorchJob": PyTorchJobAdapter(),
    "TrainJob": TrainJobAdapter(),
}
_BACKEND = {"job": "Job", "pytorchjob": "PyTorchJob", "trainjob": "TrainJob"}


def adapter_for(stage: Stage, spec: AdapterTrainingSpec) -> WorkloadAdapter:
    return ADAPTERS[_BACKEND[spec.resources.backend]] if stage.gpu else ADAPTERS["Pod"]


__all__ = ["ADAPTERS", "Context", "WorkloadAdapter", "adapter_for"]
