"""Namespace-level objects a training needs before its first workload: the deny-all
NetworkPolicy for sandboxed pods and, when the spec names no claim, the artifact PVC.

Created once and remembered per process, so steady-state reconciles cost no extra requests.
The NetworkPolicy is shared by every training in the namespace (not owned by one, so deleting
a training never opens the sandbox); the PVC is owned by its training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moa.api.training import AdapterTraining
from moa.operator.workloads.base import LABEL_SANDBOX, artifacts_claim, owner_reference

if TYPE_CHECKING:
    from moa.operator.kube import Kube

POLICY = "moa-sandbox-deny-all"
_done: set[tuple[str, str]] = set()


def network_policy(namespace: str) -> dict[str, Any]:
    """No ingress, no egress (DNS included) for pods labelled moa.dev/sandbox=true."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY, "namespace": namespace, "labels": {"app.kubernetes.io/name": "moa"}},
        "spec": {
            "podSelector": {"matchLabels": {LABEL_SANDBOX: "true"}},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def claim(training: AdapterTraining, namespace: str, uid: str) -> dict[str, Any]:
    storage = training.spec.storage
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": artifacts_claim(training),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "moa"},
            "ownerReferences": [owner_reference(training, uid)],
        },
        "spec": spec,
    }


def ensure(kube: Kube, namespace: str, training: AdapterTraining, uid: str) -> bool:
    created = False
    if (namespace, POLICY) not in _done:
        created |= kube.ensure(network_policy(namespace))
        _done.add((namespace, POLICY))
    if training.spec.storage.claim_name is None and (namespace, uid) not in _done:
        created |= kube.ensure(claim(training, namespace, uid))
        _done.add((namespace, uid))
    return created
