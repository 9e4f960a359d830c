"""Namespace-level objects a training needs before its first workload: the NetworkPolicies that
give each stage exactly the network DESIGN.md allows it, and, when the spec names no claim, the
artifact PVC.

Network per stage (Stage.network): fetch -> the package registries; trajectories -> the teacher
endpoint (none for the oracle teacher); every other stage -> nothing. NetworkPolicies are
allow-lists that add up, so this is one deny-all for every stage pod plus one egress allowance
per training for each stage that needs the network:

- `moa-stages-deny-all` selects every pod with a `moa.dev/stage` label: no ingress, no egress
  (DNS included). Shared by the trainings of the namespace and owned by none, so deleting a
  training never opens anything.
- `<training>-fetch-egress` and `<training>-teacher-egress` (owned by the training) select that
  training's fetch / trajectories pods and allow DNS plus TCP to the spec's CIDRs and ports.
  Empty CIDRs mean "public addresses": the private, loopback, link-local and shared ranges
  (the cluster, the node, cloud metadata) stay out. NetworkPolicy is L3/L4: to pin a host name
  (pypi.org, an API endpoint) give its CIDRs or route through `proxy`.

Created once and remembered per process, so steady-state reconciles cost no extra requests.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from moa.api.training import AdapterTraining, Egress
from moa.operator.workloads.base import LABEL_STAGE, LABEL_TRAINING, artifacts_claim, owner_reference

if TYPE_CHECKING:
    from moa.operator.kube import Kube

POLICY = "moa-stages-deny-all"
LABELS = {"app.kubernetes.io/name": "moa"}
# Never reachable through "public addresses": RFC 1918, CGNAT/shared, loopback, link-local
# (cloud metadata at 169.254.169.254), "this network", and their IPv6 counterparts.
NOT_PUBLIC_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
)
NOT_PUBLIC_V6 = ("::1/128", "fc00::/7", "fe80::/10")
DNS = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
_done: set[tuple[str, str]] = set()


def network_policy(namespace: str) -> dict[str, Any]:
    """No ingress, no egress (DNS included) for every moa stage pod; egress policies add to it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": POLICY, "namespace": namespace, "labels": LABELS},
        "spec": {
            "podSelector": {"matchExpressions": [{"key": LABEL_STAGE, "operator": "Exists"}]},
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def _host_cidr(url: str | None) -> tuple[str | None, int | None]:
    """(CIDR, port) of a URL whose host is an IP address literal; (None, port) otherwise."""
    if not url:
        return None, None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addr = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None, port
    return f"{addr}/{addr.max_prefixlen}", port


def destinations(egress: Egress, endpoint: str | None = None) -> tuple[list[dict[str, Any]], list[int]]:
    """The `to` peers and TCP ports one stage may reach.

    The proxy, or the endpoint when its host is an address literal, is added to the CIDRs; with
    no CIDRs at all, every public address is allowed (see the module docstring).
    """
    cidrs, ports = list(egress.cidrs), list(egress.ports)
    cidr, port = _host_cidr(egress.proxy or endpoint)  # through the proxy, only the proxy counts
    if cidr and cidr not in cidrs:
        cidrs.append(cidr)
    if port and port not in ports:
        ports.append(port)
    if cidrs:
        return [{"ipBlock": {"cidr": c}} for c in cidrs], ports
    public = [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": list(NOT_PUBLIC_V4)}},
        {"ipBlock": {"cidr": "::/0", "except": list(NOT_PUBLIC_V6)}},
    ]
    return public, ports


def egress_policy(
    training: AdapterTraining,
    namespace: str,
    uid: str,
    stage: str,
    egress: Egress,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Allow one training's `stage` pods DNS and TCP to the spec's destinations, nothing else."""
    name = training.metadata.name
    peers, ports = destinations(egress, endpoint)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"{name}-{'teacher' if stage == 'trajectories' else stage}-egress",
            "namespace": namespace,
            "labels": {**LABELS, LABEL_TRAINING: name},
            "ownerReferences": [owner_reference(training, uid)],
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_TRAINING: name, LABEL_STAGE: stage}},
            "policyTypes": ["Egress"],
            "egress": [DNS, {"to": peers, "ports": [{"protocol": "TCP", "port": p} for p in ports]}],
        },
    }


def egress_policies(training: AdapterTraining, namespace: str, uid: str) -> list[dict[str, Any]]:
    """The training's allowances: fetch always; trajectories only for an API teacher."""
    spec = training.spec
    out = [egress_policy(training, namespace, uid, "fetch", spec.network.fetch)]
    teacher = spec.data.teacher
    if teacher.kind != "oracle":
        out.append(
            egress_policy(training, namespace, uid, "trajectories", spec.network.teacher, teacher.endpoint)
        )
    return out


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
            "labels": LABELS,
            "ownerReferences": [owner_reference(training, uid)],
        },
        "spec": spec,
    }


def ensure(kube: Kube, namespace: str, training: AdapterTraining, uid: str) -> bool:
    created = False
    if (namespace, POLICY) not in _done:
        created |= kube.ensure(network_policy(namespace))
        _done.add((namespace, POLICY))
    if (namespace, uid) not in _done:
        for policy in egress_policies(training, namespace, uid):
            created |= kube.ensure(policy)
        if training.spec.storage.claim_name is None:
            created |= kube.ensure(claim(training, namespace, uid))
        _done.add((namespace, uid))
    return created
