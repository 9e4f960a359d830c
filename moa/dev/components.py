"""What each control-plane component is started with, and how its health is read.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real upstream binaries;
KWOK stands in for kubelets. Every flag points into the cluster's state dir, which is also how a
running process is recognised as ours (see processes.is_ours).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from moa.dev.pki import client_context

# Start order matters: etcd, then the API server, then everything that talks to it.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
START_BATCHES = (COMPONENTS[:1], COMPONENTS[1:2], COMPONENTS[2:])
PORTS = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
# The controller-manager's API client rate (per controller) and Job syncs at once, raised for a
# local control plane that runs hundreds of trainings' Jobs: see the flags below.
KCM_QPS, KCM_BURST, KCM_JOB_SYNCS = 200, 400, 20


def health(component: str, ports: dict[str, int], pki: Path) -> tuple[str, ssl.SSLContext | None]:
    """URL that answers 200 once COMPONENT serves, and the TLS context to reach it with."""
    if component == "etcd":
        return f"http://127.0.0.1:{ports['etcd']}/health", None
    if component == "kube-apiserver":
        return f"https://127.0.0.1:{ports[component]}/readyz", client_context(pki)
    if component == "kwok":
        return f"http://127.0.0.1:{ports[component]}/healthz", None
    # controller-manager and scheduler serve health with a self-signed certificate of their own
    return f"https://127.0.0.1:{ports[component]}/healthz", ssl._create_unverified_context()


def flags(component: str, cluster: str, state: Path, ports: dict[str, int]) -> list[str]:
    """Command-line flags of COMPONENT for the cluster named CLUSTER whose state dir is STATE."""
    pki = state / "pki"
    if component == "etcd":
        return [
            f"--name={cluster}",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
            f"--initial-cluster={cluster}=http://127.0.0.1:{ports['etcd-peer']}",
            "--unsafe-no-fsync",  # a throwaway dev store on a shared disk: speed over durability
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        return [
            f"--etcd-servers=http://127.0.0.1:{ports['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={ports['kube-apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            # Aggregation layer (and the extension-apiserver-authentication ConfigMap that
            # controller-manager and scheduler read): only the front-proxy cert may set headers.
            f"--requestheader-client-ca-file={pki / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # logs/exec on a real node (node.py): kubelet authenticates the API server by this cert
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=none",  # a loopback address is not a valid endpoint
            "--profiling=false",
            "--v=0",
        ]
    common = [
        f"--kubeconfig={state / f'{component}.kubeconfig'}",
        f"--authentication-kubeconfig={state / f'{component}.kubeconfig'}",
        f"--authorization-kubeconfig={state / f'{component}.kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports[component]}",
        f"--cert-dir={state / 'serving' / component}",
        "--leader-elect=false",
        "--profiling=false",
    ]
    if component == "kube-controller-manager":
        return [
            *common,
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            # Local-control-plane settings (a platform team tunes its own): the defaults, 20
            # requests/s (burst 30) per controller client and 5 Job syncs at once, kept 20
            # concurrent trainings' Jobs queued for 2.5 s on average, most of it waiting on the
            # client-side rate limiter (docs/cluster.md, "Operator at scale").
            f"--kube-api-qps={KCM_QPS}",
            f"--kube-api-burst={KCM_BURST}",
            f"--concurrent-job-syncs={KCM_JOB_SYNCS}",
        ]
    if component == "kube-scheduler":
        return common
    if component == "kwok":
        return [
            f"--kubeconfig={state / 'kwok.kubeconfig'}",
            f"--config={state / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports['kwok']}",
        ]
    raise ValueError(component)
