"""batch/v1 Job: the default training backend; works on any cluster, kind included.

backoffLimit 0: retries belong to the operator (exponential backoff, attempts in status), not
to the Job controller, so every attempt is a distinct, visible workload. With a Kueue queue
the Job carries the queue label and Kueue owns `suspend`; we never flip it.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, attempt_from_pods
from moa.pipeline.planner import Attempt


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


class JobAdapter:
    kind = "Job"
    api_version = "batch/v1"
    plural = "jobs"

    def render(self, ctx: Context) -> dict[str, Any]:
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": ctx.metadata(),
            "spec": {"backoffLimit": 0, "template": ctx.pod_template()},
        }

    def pod_selector(self, obj: dict[str, Any]) -> str:
        return f"batch.kubernetes.io/job-name={obj['metadata']['name']}"

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        failed = condition(obj, "Failed")
        finished = True if condition(obj, "Complete") else (False if failed else None)
        reason = f"{failed.get('reason', '')}: {failed.get('message', '')}" if failed else ""
        return attempt_from_pods(
            obj["metadata"]["name"],
            self.kind,
            pods,
            finished,
            obj["metadata"].get("creationTimestamp"),
            reason,
        )
