"""Stopping the real node (what `moa dev cluster down` does first) leaves nothing on the host.

A running pod puts everything a node can leave behind in place (a container and its shim,
overlay and volume mounts, a network namespace, a veth on the bridge, NAT and policy chains,
pod cgroups, rewritten sysctls); after the node's `down` the leftover check must find none of it. The
next real-node test starts the node again (the `node_kubeconfig` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from moa.dev import host_state
from moa.dev.node_images import node_images

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]


def test_down_leaves_no_mounts_chains_links_cgroups_or_processes(
    node_cluster, node_kubectl: Any, node_namespace: str, kubectl_bin: Path
) -> None:
    node = node_cluster.node
    saved = (node.dir / "sysctls.json").read_text()
    probe = node_images(print).probe
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-all"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }
    running = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "busy"},
        "spec": {
            "containers": [
                {"name": "c", "image": probe, "imagePullPolicy": "Never", "args": ["sleep", "600"]}
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }
    node_kubectl("apply", "-n", node_namespace, "-f", "-", input=yaml.safe_dump_all([policy, running]))
    node_kubectl("wait", "--for=condition=Ready", "pod/busy", "-n", node_namespace, "--timeout=120s")
    during = node.leftovers()
    for kind in ("mount", "netns", "process", "iptables", "ip6tables", "link", "cgroup"):
        assert any(item.startswith(kind) for item in during), f"no {kind} while a pod runs: {during}"

    # What `moa dev cluster down` does first: drain through the API, stop, clean. The control
    # plane (loopback processes, checked by test_control_plane.py) stays up for the next test.
    left = node.down(kubectl_bin)

    assert left == [] and node.leftovers() == []
    pods = json.loads(node_kubectl("get", "pods", "-n", node_namespace, "-o", "json").stdout)["items"]
    assert all(p["metadata"].get("deletionTimestamp") for p in pods)  # deleted through the API first
    assert host_state.read_sysctls() == yaml.safe_load(saved)  # the JSON file is valid YAML
