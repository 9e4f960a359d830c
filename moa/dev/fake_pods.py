"""How a simulated (KWOK) pod ends: annotations that choose its outcome.

KWOK runs no containers; its Stage rules move pods through Pending -> Running -> Succeeded/Failed
and write the container statuses a kubelet would. The rules in ``moa/dev/kwok/stages.yaml`` read
the annotations below, so an operator test can drive any stage to any outcome with realistic pod
status (exit code, reason, termination message) and the real Job controller reacts to it.

Pods whose ``restartPolicy`` is ``Never`` or ``OnFailure`` (Job pods, JobSet/PyTorchJob pods, our
bare stage pods) finish; ``Always`` pods (servers) keep running, as they would on a real node.
Without annotations a pod succeeds after ``DEFAULT_DURATION_MS`` with no termination message.

    metadata:
      annotations:
        kwok.moa.dev/outcome: fail          # succeed (default) | fail
        kwok.moa.dev/duration: 2s           # how long the container "runs" (Go duration)
        kwok.moa.dev/message: '{"status": "gate-failed"}'   # containerStatuses[].state.terminated.message
        kwok.moa.dev/exit-code: "3"         # integer; default 0 on success, 1 on failure

`artifact_volume` gives simulated pods the artifact claim a training names (they never write it).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

OUTCOME = "kwok.moa.dev/outcome"
DURATION = "kwok.moa.dev/duration"
MESSAGE = "kwok.moa.dev/message"
EXIT_CODE = "kwok.moa.dev/exit-code"

SUCCEED = "succeed"
FAIL = "fail"
DEFAULT_DURATION_MS = 1000

_PLACEHOLDERS = {
    "@OUTCOME@": OUTCOME,
    "@DURATION@": DURATION,
    "@MESSAGE@": MESSAGE,
    "@EXIT_CODE@": EXIT_CODE,
    "@FAIL@": FAIL,
    "@DEFAULT_DURATION_MS@": str(DEFAULT_DURATION_MS),
}


def annotations(
    outcome: str = SUCCEED,
    duration: str | None = None,
    message: str | None = None,
    exit_code: int | None = None,
) -> dict[str, str]:
    """The annotations for a pod template that should end as described."""
    if outcome not in (SUCCEED, FAIL):
        raise ValueError(f"outcome must be {SUCCEED!r} or {FAIL!r}, got {outcome!r}")
    out = {OUTCOME: outcome}
    if duration is not None:
        out[DURATION] = duration
    if message is not None:
        out[MESSAGE] = message
    if exit_code is not None:
        out[EXIT_CODE] = str(int(exit_code))
    return out


def stages_yaml() -> str:
    """KWOK Stage documents for nodes and pods, with the annotation keys filled in from this module."""
    text = resources.files("moa.dev.kwok").joinpath("stages.yaml").read_text()
    for placeholder, value in _PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def artifact_volume(namespace: str, claim: str = "artifacts") -> list[dict[str, Any]]:
    """A ReadWriteMany claim CLAIM in NAMESPACE pre-bound to a hostPath PV: the artifact root that
    training specs name in `storage.claimName`. Simulated pods never write to it."""
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{claim}"},
        "spec": {
            "capacity": {"storage": "1Ti"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "manual",
            "hostPath": {"path": f"/tmp/{namespace}"},
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "manual",
            "resources": {"requests": {"storage": "1Ti"}},
        },
    }
    return [pv, pvc]
