"""Pods that really run: the local real node (`moa dev cluster up --real-node`).

containerd + runc run the containers, kubelet reports their real exit codes, kube-router enforces
NetworkPolicy with iptables, and the Job controller retries a pod that was killed. The probe
image holds nodetool only (moa/dev/nodetool), so each check is one small static program; every
address probed is on this host (the pod bridge, pod IPs), never outside it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from moa.dev.node import NODE_NAME
from moa.dev.node_config import GATEWAY, POD_CIDR
from moa.dev.node_images import node_images

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

Kubectl = Callable[..., Any]
UID = 65532
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture
def probe_image(node_cluster: Any, node_kubeconfig: Any) -> str:
    """The probe image, on a node that is up (`node_kubeconfig` brings it up again after a test
    that stopped it)."""
    images = node_images(print)
    # Imported when the node started; kubelet's image GC may have removed it since (a disk filled
    # by image builds), and nothing could pull it again.
    node_cluster.node.import_images(images.archives)
    return images.probe


def pod(name: str, image: str, *commands: list[str], labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod that passes Pod Security `restricted`; one container per command."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 2,
            "securityContext": {"runAsUser": UID, "runAsGroup": UID, "runAsNonRoot": True},
            "containers": [
                {
                    "name": f"c{i}",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": command,
                    "securityContext": RESTRICTED,
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
                for i, command in enumerate(commands)
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def apply(kubectl: Kubectl, ns: str, *docs: dict[str, Any]) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))


def get(kubectl: Kubectl, ns: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)


def settled(probe: Callable[[], bool], want: bool, seconds: float = 60) -> bool:
    """PROBE's answer once it gives WANT, or after SECONDS (kube-router applies policies a little
    after they are created, and a new pod's address a little after it starts)."""
    for _ in range(int(seconds / 2)):
        if probe() == want:
            break
        time.sleep(2)
    return probe()


def wait_phase(kubectl: Kubectl, ns: str, target: str, phase: str, seconds: int = 120) -> None:
    kubectl("wait", f"--for=jsonpath={{.status.phase}}={phase}", target, "-n", ns, f"--timeout={seconds}s")


def test_restricted_pod_runs_for_real_with_read_only_root_and_non_root_uid(
    node_kubectl: Kubectl, node_namespace: str, probe_image: str
) -> None:
    ns = node_namespace
    node_kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    apply(
        node_kubectl,
        ns,
        pod(
            "restricted",
            probe_image,
            ["whoami"],
            ["write", "/escaped"],  # the image's root file system
            ["write", "/tmp/scratch"],  # its volume
        ),
    )
    wait_phase(node_kubectl, ns, "pod/restricted", "Failed")  # c1 must fail: the root is read-only
    done = get(node_kubectl, ns, "pod", "restricted")
    assert done["spec"]["nodeName"] == NODE_NAME
    exits = {c["name"]: c["state"]["terminated"]["exitCode"] for c in done["status"]["containerStatuses"]}
    assert exits == {"c0": 0, "c1": 1, "c2": 0}  # root is read-only, the volume is writable
    assert node_kubectl("logs", "-n", ns, "restricted", "-c", "c0").stdout.strip() == f"uid={UID} gid={UID}"
    assert "read-only file system" in node_kubectl("logs", "-n", ns, "restricted", "-c", "c1").stdout
    assert done["status"]["podIP"].startswith(POD_CIDR.rsplit(".", 2)[0])
    # The same pod as root is refused by admission before it reaches the node.
    root = pod("as-root", probe_image, ["whoami"])
    root["spec"]["securityContext"] = {"runAsUser": 0}
    refused = node_kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(root), check=False)
    assert refused.returncode != 0 and "restricted" in refused.stderr


@pytest.fixture
def host_server() -> Iterator[tuple[str, int]]:
    """A TCP server on the pod bridge's host address: 'the host', as seen from a pod."""
    server = socket.create_server((GATEWAY, 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.sendall(b"ok\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield GATEWAY, server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_network_policy_is_enforced(
    node_kubectl: Kubectl, node_namespace: str, probe_image: str, host_server: tuple[str, int], node_cluster
) -> None:
    ns = node_namespace
    kubelet = f"{GATEWAY}:{node_cluster.node.ports()['kubelet']}"
    host = f"{host_server[0]}:{host_server[1]}"
    sleeper = ["sleep", "600"]
    apply(
        node_kubectl,
        ns,
        pod("target", probe_image, ["serve", "8080"], labels={"app": "target"}),
        pod("open", probe_image, sleeper, labels={"role": "open"}),
        pod("denied", probe_image, sleeper, labels={"role": "denied"}),
        pod("allowed", probe_image, sleeper, labels={"role": "allowed"}),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all-egress"},
            "spec": {"podSelector": {"matchLabels": {"role": "denied"}}, "policyTypes": ["Egress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "egress-to-target-only"},
            "spec": {
                "podSelector": {"matchLabels": {"role": "allowed"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": {"app": "target"}}}],
                        "ports": [{"protocol": "TCP", "port": 8080}],
                    }
                ],
            },
        },
    )
    for name in ("target", "open", "denied", "allowed"):
        node_kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", ns, "--timeout=120s")
    target = f"{get(node_kubectl, ns, 'pod', 'target')['status']['podIP']}:8080"

    def reaches(source: str, address: str) -> bool:
        probe = node_kubectl(
            "exec", "-n", ns, source, "--", "/nodetool", "connect", address, "2", check=False
        )
        assert probe.returncode in (0, 1), probe.stderr  # 1: unreachable; anything else: exec broke
        return probe.returncode == 0

    # Without a policy everything here is reachable: the checks below test the policy, not routing.
    for address in (target, host, kubelet):
        assert settled(lambda a=address: reaches("open", a), True), f"open pod cannot reach {address}"
    # kube-router programs policies asynchronously: wait for the first effect, then check all.
    assert not settled(lambda: reaches("denied", target), False), "deny-all never took effect"
    for address in (target, host, kubelet):
        assert not reaches("denied", address), f"deny-all pod reached {address}"
    assert settled(lambda: reaches("allowed", target), True), "the egress allow never took effect"
    for address in (host, kubelet):
        assert not reaches("allowed", address), f"pod allowed only the target reached {address}"


def test_killed_pod_of_a_job_is_retried_and_the_job_completes(
    node_kubectl: Kubectl, node_namespace: str, probe_image: str
) -> None:
    ns = node_namespace
    template = pod("unused", probe_image, ["sleep", "15"])
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "retried"},
        "spec": {
            "backoffLimit": 2,
            "template": {"metadata": {"labels": {"app": "retried"}}, "spec": template["spec"]},
        },
    }
    apply(node_kubectl, ns, job)

    phases = ("get", "pods", "-n", ns, "-l", "app=retried", "-o", "jsonpath={.items[*].status.phase}")
    assert settled(lambda: node_kubectl(*phases).stdout == "Running", True, 120), "the Job's pod never ran"
    first = node_kubectl("get", "pods", "-n", ns, "-l", "app=retried", "-o", "name").stdout.strip()
    node_kubectl("delete", first, "-n", ns, "--wait=false")
    node_kubectl("wait", "--for=condition=Complete", "job/retried", "-n", ns, "--timeout=180s")
    status = get(node_kubectl, ns, "job", "retried")["status"]
    assert status["succeeded"] == 1 and status.get("failed", 0) >= 1  # the killed pod counts as failed
    pods = json.loads(node_kubectl("get", "pods", "-n", ns, "-l", "app=retried", "-o", "json").stdout)[
        "items"
    ]
    assert first.split("/")[1] not in {
        p["metadata"]["name"] for p in pods if p["status"]["phase"] == "Succeeded"
    }
