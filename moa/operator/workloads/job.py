"""batch/v1 Job: the default training backend; works on any cluster, kind included.

backoffLimit 0: retries belong to the operator (exponential backoff, attempts in status), not
to the Job controller, so every attempt is a distinct, visible workload. With a Kueue queue
the Job carries the queue label and Kueue owns `suspend`; we never flip it.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, observe_conditions
from moa.pipeline.planner import Attempt


class JobAdapter:
    kind = "Job"
    api_version = "batch/v1"
    plural = "jobs"
    pod_label: str | None = None

    def render(self, ctx: Context) -> dict[str, Any]:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": ctx.metadata(),
            "spec": {"backoffLimit": 0, "template": ctx.pod_template()},
        }

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        return observe_conditions(self.kind, obj, pods, done="Complete")
