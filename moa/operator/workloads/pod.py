"""A bare sandboxed Pod: mutation shards and the other CPU stages (one pod, no controller).

Bare pods keep untrusted work simple to bound: restartPolicy Never, activeDeadlineSeconds,
requests = limits, no service-account token, in the restricted namespace.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import Context, attempt_from_pods
from moa.pipeline.planner import Attempt


class PodAdapter:
    kind = "Pod"
    api_version = "v1"
    plural = "pods"
    pod_label: str | None = None

    def render(self, ctx: Context) -> dict[str, Any]:
        meta = ctx.metadata()
        meta["annotations"] = {**meta["annotations"], **ctx.annotations()}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": ctx.pod_spec()}

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        phase = obj.get("status", {}).get("phase")
        finished = {"Succeeded": True, "Failed": False}.get(phase or "")
        reason = obj.get("status", {}).get("reason", "") or obj.get("status", {}).get("message", "")
        return attempt_from_pods(
            obj["metadata"]["name"],
            self.kind,
            [obj],
            finished,
            obj["metadata"].get("creationTimestamp"),
            reason,
        )
