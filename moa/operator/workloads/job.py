"""batch/v1 Job: the default training backend; works on any cluster, kind included.

backoffLimit 0: retries belong to the operator (exponential backoff, attempts in status), not
to the Job controller, so every attempt is a distinct, visible workload. With a Kueue queue
the Job carries the queue label and Kueue owns `suspend`; we never flip it.

A moa Job runs one pod (completions 1, parallelism 1), so once that pod has Succeeded with the
stage's result in its termination message the stage is done: observe() reads it from the pod
and the training moves on without waiting for the Job controller to mark the Job Complete
(seconds on a busy control plane, at every hand-off). Only success short-cuts: a failed pod, or
a succeeded one without a readable result, still waits for the Job's own conditions. The Job
itself is left as it is: the Job controller completes it, and with Kueue only then releases its
quota, so a next stage on the same queue waits (queued) until that happens.
"""

from __future__ import annotations

from typing import Any

from moa.operator.workloads.base import (
    Context,
    attempt_from_pods,
    observe_conditions,
    summary_from,
    terminated,
)
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
            "spec": {
                "backoffLimit": 0,
                "completions": 1,  # one pod: what observe()'s short-cut on its success relies on
                "parallelism": 1,
                "template": ctx.pod_template(),
            },
        }

    def observe(self, obj: dict[str, Any], pods: list[dict[str, Any]]) -> Attempt:
        done = _succeeded_with_result(obj, pods)
        if done is not None:
            meta = obj["metadata"]
            return attempt_from_pods(meta["name"], self.kind, [done], True, meta.get("creationTimestamp"))
        return observe_conditions(self.kind, obj, pods, done="Complete")


def _succeeded_with_result(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The Job's pod that has Succeeded and reported a result, while the Job has no verdict yet."""
    conditions = {
        c.get("type") for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"
    }
    if conditions & {"Complete", "Failed"}:
        return None  # the Job controller has spoken: its conditions are the answer
    for pod in pods:
        if pod.get("status", {}).get("phase") == "Succeeded" and summary_from(terminated(pod)) is not None:
            return pod
    return None
