"""Configuration files of the real node: containerd, the bridge CNI network, kubelet, kube-proxy.

Everything points into the node's state dir (``~/.cache/moa/cluster/<name>/node``), which is also
how its processes are recognised as ours. Choices forced by this kind of host (no systemd,
cgroup v1, no CAP_SYS_RESOURCE, no IPVS) are commented where they are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

POD_CIDR = "10.244.0.0/24"
BRIDGE = "moa-cni0"  # ours alone: teardown deletes it, and nothing else on the host uses the name
GATEWAY = "10.244.0.1"  # the bridge's address, and the node's InternalIP (kubelet refuses loopback)
NETWORK = "moa-pods"  # CNI network name; the bridge plugin's NAT chains carry it in their comments
CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")  # Debian's runc


@dataclass(frozen=True)
class NodeLayout:
    """Where the real node keeps its files."""

    root: Path

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet" / "config.yaml"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet" / "root"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy.yaml"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    def kubeconfig(self, who: str) -> Path:
        return self.root / f"{who}.kubeconfig"


def containerd_toml(layout: NodeLayout, pause_image: str) -> str:
    """containerd 2.4 (config version 4) for CRI on this host."""
    d = layout.root / "containerd"
    cri_runtime = {
        "enable_selinux": False,
        # Root here lacks CAP_SYS_RESOURCE: lowering a process's oom_score_adj below containerd's
        # own fails, so clamp to it instead (what rootless setups do).
        "restrict_oom_score_adj": True,
        # Pod network namespaces live under our state dir, not /run/netns: teardown finds them all.
        "netns_mounts_under_state_dir": True,
        "containerd": {
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    # No systemd on this host: cgroupfs, like kubelet's cgroupDriver.
                    "options": {"SystemdCgroup": False, "BinaryName": str(RUNC), "Root": str(d / "runc")},
                }
            },
        },
        "cni": {"bin_dirs": [str(CNI_BIN)], "conf_dir": str(layout.cni_conf_dir), "max_conf_num": 1},
    }
    config = {
        "version": 4,
        "imports": [],  # not the host's /etc/containerd/conf.d: this containerd is ours alone
        "root": str(d / "root"),
        "state": str(d / "state"),
        "plugins": {
            # Version 4 configures the servers as plugins; the defaults are host paths in /run.
            "io.containerd.server.v1.grpc": {"address": str(layout.containerd_socket)},
            "io.containerd.server.v1.ttrpc": {"address": str(layout.containerd_socket) + ".ttrpc"},
            "io.containerd.server.v1.debug": {"address": ""},
            "io.containerd.server.v1.metrics": {"address": ""},
            "io.containerd.cri.v1.runtime": cri_runtime,
            "io.containerd.cri.v1.images": {
                "snapshotter": "overlayfs",
                "pinned_images": {"sandbox": pause_image},  # kept by image GC, never pulled
            },
            "io.containerd.grpc.v1.cri": {
                "disable_tcp_service": True,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
            },
        },
    }
    return toml_dump(config)


def toml_dump(config: dict, prefix: str = "") -> str:
    """The small TOML subset the containerd config needs (tables, strings, ints, bools, lists)."""
    scalars, tables = [], []
    for key, value in config.items():
        if isinstance(value, dict):
            name = f"{prefix}.{toml_key(key)}" if prefix else toml_key(key)
            tables.append((name, value))
        else:
            scalars.append(f"{toml_key(key)} = {json.dumps(value)}")
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    text = "\n".join(out) + ("\n\n" if out else "")
    return text + "".join(toml_dump(value, name) for name, value in tables)


def toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def cni_conflist(layout: NodeLayout) -> str:
    """One bridge network with host-local IPAM (state in our dir) and masquerade to the outside."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.root / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_yaml(layout: NodeLayout, port: int, healthz_port: int, pki: Path) -> str:
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Served on the bridge address (the node's InternalIP) so the API server reaches it for
        # logs and exec; pods reach it only where NetworkPolicy allows, and it authenticates.
        "address": GATEWAY,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        # This host: no systemd, cgroup v1 (kubelet >= 1.35 refuses v1 unless told otherwise).
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "podCIDR": POD_CIDR,
        "podLogsDir": str(layout.root / "pod-logs"),
        "resolvConf": "/etc/resolv.conf",
        # A shared developer disk is often fuller than a node's: evict only when nearly full, and
        # never garbage-collect the imported images (there is no registry to pull them back from).
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "registerNode": True,
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
    }
    return yaml.safe_dump(config, sort_keys=False)


def kube_proxy_yaml(layout: NodeLayout, node: str, healthz_port: int, metrics_port: int) -> str:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",  # the kernel has no IPVS
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        "hostnameOverride": node,
        "clusterCIDR": POD_CIDR,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls and route_localnet alone (shared machine).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        # NodePorts only on the bridge address: never reachable from the machine's own network.
        "nodePortAddresses": [f"{GATEWAY}/32"],
    }
    return yaml.safe_dump(config, sort_keys=False)
