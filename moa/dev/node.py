"""A real node for the local cluster (`moa dev cluster up --real-node`): pods that really run.

containerd 2.x with Debian's runc runs the containers, a bridge CNI network (Debian's
containernetworking-plugins) gives each pod an address on ``moa-cni0``, kubelet registers the
node, kube-proxy programs Services with iptables (the kernel has no IPVS) and kube-router, in
firewall-only mode, enforces NetworkPolicy. kubelet, kube-proxy, containerd and kube-router are
built from their Go modules (k8s_build.py); images come from ``ctr image import`` only, since
there is no registry. One real node per host: the bridge, iptables chains and pod cgroups are
host-wide, so a host lock names the cluster that owns them.

`down` drains the node through the API (kubelet stops every sandbox, so CNI releases addresses
and NAT chains), stops the processes, then removes whatever is still there (host_state.py) and
restores the sysctls kubelet rewrote; `leftovers()` is empty afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from moa.dev import host_state, node_config
from moa.dev.components import SERVICE_CIDR
from moa.dev.k8s_build import NODE_BINARIES, cache_root, ensure_binaries
from moa.dev.kubectl import run_kubectl
from moa.dev.node_config import NodeLayout
from moa.dev.node_images import node_images
from moa.dev.pki import sign, write_kubeconfig
from moa.dev.processes import free_port, http_ok, is_ours, spawn, stop, wait_ready

NODE_NAME = "moa-node"
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "kube-router")
PORTS = ("kubelet", "kubelet-healthz", "kube-proxy-healthz", "kube-proxy-metrics")
HOST_TOOLS = {  # what Debian provides: `make node-deps` installs them
    "runc": node_config.RUNC,
    "bridge CNI plugin": node_config.CNI_BIN / "bridge",
    "host-local CNI plugin": node_config.CNI_BIN / "host-local",
    "loopback CNI plugin": node_config.CNI_BIN / "loopback",
}
HOST_COMMANDS = ("iptables", "ipset", "conntrack", "ip", "umount")
ARTIFACTS_PV = "moa-artifacts"
STORAGE_CLASS = "moa-local"
DRAIN_TIMEOUT_S = 90
KUBE_ROUTER_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: moa:kube-router}
rules:
- apiGroups: [""]
  resources: [namespaces, pods, services, nodes, endpoints]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: moa:kube-router}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: moa:kube-router}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: moa:kube-router}
"""
IDENTITIES = {  # kubeconfig name -> certificate subject
    "kubelet": f"/O=system:nodes/CN=system:node:{NODE_NAME}",
    "kube-proxy": "/CN=system:kube-proxy",  # bound to system:node-proxier by the default policy
    "kube-router": "/CN=moa:kube-router",
}


class PrerequisiteMissing(RuntimeError):
    """The host lacks a tool the real node needs (see `make node-deps`)."""


def missing_prerequisites() -> list[str]:
    """Host tools the real node needs that are absent, each with where it comes from."""
    missing = [f"{what} ({path})" for what, path in HOST_TOOLS.items() if not path.exists()]
    missing += [cmd for cmd in HOST_COMMANDS if shutil.which(cmd) is None]
    if os.geteuid() != 0:
        missing.append("root (kubelet and containerd manage mounts, cgroups and iptables)")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        missing.append("the br_netfilter kernel module (NetworkPolicy on bridged pod traffic)")
    return missing


class RealNode:
    """The real node of the cluster whose state dir is CLUSTER_DIR."""

    def __init__(self, cluster_dir: Path, say: Callable[[str], None]) -> None:
        self.cluster_dir = cluster_dir
        self.layout = NodeLayout(cluster_dir / "node")
        self.say = say

    @property
    def dir(self) -> Path:
        return self.layout.root

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig"

    def log(self, component: str) -> Path:
        return self.cluster_dir / "logs" / f"{component}.log"

    def pids(self) -> dict[str, int]:
        path = self.dir / "pids.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def running(self) -> dict[str, int]:
        return {c: pid for c, pid in self.pids().items() if is_ours(pid, self.dir)}

    def is_up(self) -> bool:
        return set(self.running()) == set(COMPONENTS)

    def ports(self) -> dict[str, int]:
        path = self.dir / "ports.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({name: free_port() for name in PORTS}, indent=2))
        return json.loads(path.read_text())

    def leftovers(self) -> list[str]:
        return host_state.leftovers(self.dir)

    # -- host ownership ------------------------------------------------------------------------
    @staticmethod
    def owner_file() -> Path:
        return cache_root() / "node" / "host-owner"

    def other_owner(self) -> Path | None:
        """The state dir of another cluster's real node running on this host, if any."""
        owner = self.owner_file()
        other = Path(owner.read_text().strip()) if owner.exists() else None
        if other is None or other == self.dir or not RealNode(other.parent, self.say).running():
            return None
        return other

    def claim_host(self) -> None:
        """Only one real node per host: the bridge, iptables chains and pod cgroups are host-wide."""
        other = self.other_owner()
        if other is not None:
            raise RuntimeError(
                f"another cluster's real node runs on this host ({other}); "
                f"stop it first: moa dev cluster --name {other.parent.name} down"
            )
        self.owner_file().parent.mkdir(parents=True, exist_ok=True)
        self.owner_file().write_text(str(self.dir))

    # -- up ------------------------------------------------------------------------------------
    def up(self, kubectl: Path, extra_images: Iterable[Path] = ()) -> None:
        """Start containerd, kubelet, kube-proxy and kube-router (the control plane must be up)."""
        if self.is_up():
            self.import_images(extra_images)
            return
        missing = missing_prerequisites()
        if missing:
            raise PrerequisiteMissing(
                "the real node needs: " + "; ".join(missing) + ". Install them with `make node-deps` "
                "(apt-get install runc containernetworking-plugins iptables ipset conntrack)."
            )
        self.claim_host()
        if self.running():
            self.say("some real-node components run but not all; restarting the node")
            self.stop_processes()
        binaries = ensure_binaries(NODE_BINARIES, say=self.say)
        images = node_images(self.say)
        self.write_files(images.pause)
        saved = self.dir / "sysctls.json"
        if not saved.exists():  # the host's own values, from before the first start
            saved.write_text(json.dumps(host_state.read_sysctls(), indent=2))
        host_state.write_sysctls({"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"})
        self.make_bridge()
        env = {**os.environ, "PATH": f"{binaries['containerd'].parent}:/usr/sbin:/usr/bin:/sbin:/bin"}

        pids = self.pids()
        pids["containerd"] = spawn(
            [str(binaries["containerd"]), "--config", str(self.layout.containerd_config)],
            self.log("containerd"),
            env=env,
        )
        self.save_pids(pids)
        wait_ready(
            "containerd", pids["containerd"], self.containerd_ready(binaries["ctr"]), self.log("containerd")
        )
        self.import_images([*images.archives, *extra_images])

        run_kubectl(kubectl, self.admin_kubeconfig, "apply", "-f", "-", input=self.node_object())
        run_kubectl(kubectl, self.admin_kubeconfig, "apply", "-f", "-", input=KUBE_ROUTER_RBAC)
        ports = self.ports()
        health = {
            "kubelet": lambda: http_ok(f"http://127.0.0.1:{ports['kubelet-healthz']}/healthz", None),
            "kube-proxy": lambda: http_ok(f"http://127.0.0.1:{ports['kube-proxy-healthz']}/healthz", None),
            "kube-router": lambda: "KUBE-ROUTER-FORWARD" in host_state.our_chains("filter"),
        }
        commands = self.commands(binaries)
        # kube-router reads the node's InternalIP from its status, so it starts once kubelet has
        # registered the node and reported it Ready.
        for batch in (("kubelet", "kube-proxy"), ("kube-router",)):
            for component in batch:
                self.say(f"starting {component}")
                pids[component] = spawn(commands[component], self.log(component), env=env)
                self.save_pids(pids)
            for component in batch:
                wait_ready(component, pids[component], health[component], self.log(component))
            if "kubelet" in batch:
                wait = ("wait", "--for=condition=Ready", f"node/{NODE_NAME}", "--timeout=90s")
                run_kubectl(kubectl, self.admin_kubeconfig, *wait)
        run_kubectl(kubectl, self.admin_kubeconfig, "apply", "-f", "-", input=self.artifacts_volume())

    def save_pids(self, pids: dict[str, int]) -> None:
        (self.dir / "pids.json").write_text(json.dumps(pids, indent=2))

    def containerd_ready(self, ctr: Path) -> Callable[[], bool]:
        def ready() -> bool:
            return self.layout.containerd_socket.exists() and self.ctr_ok(ctr, "version")

        return ready

    def ctr_ok(self, ctr: Path, *args: str) -> bool:
        return (
            host_state.run(str(ctr), "--address", str(self.layout.containerd_socket), *args).returncode == 0
        )

    def import_images(self, archives: Iterable[Path]) -> None:
        """`ctr -n k8s.io image import` each OCI archive whose image is not there yet. An older
        image of the same name is removed first: a 6 GB trainer twice may not fit on the disk."""
        ctr = ensure_binaries(["ctr"], say=self.say)["ctr"]
        images = [str(ctr), "--address", str(self.layout.containerd_socket), "-n", "k8s.io", "images"]
        for archive in archives:
            started = time.monotonic()
            name, digest = oci_archive_ref(archive)
            present = host_state.run(*images, "ls", "--quiet", f"name=={name},target.digest=={digest}")
            if name and present.stdout.strip() == name:
                continue
            if name:
                host_state.run(*images, "rm", "--sync", name)
            result = host_state.run(*images, "import", "--local", str(archive))
            if result.returncode != 0:
                raise RuntimeError(f"importing {archive} failed: {result.stderr.strip()}")
            self.say(f"imported {archive.name} in {time.monotonic() - started:.1f} s")

    def write_files(self, pause_image: str) -> None:
        layout, ports = self.layout, self.ports()
        for folder in (
            layout.containerd_config.parent,
            layout.cni_conf_dir,
            layout.kubelet_root,
            layout.volumes,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        (self.cluster_dir / "logs").mkdir(parents=True, exist_ok=True)
        layout.containerd_config.write_text(node_config.containerd_toml(layout, pause_image))
        (layout.cni_conf_dir / "10-moa.conflist").write_text(node_config.cni_conflist(layout))
        layout.kubelet_config.write_text(
            node_config.kubelet_yaml(layout, ports["kubelet"], ports["kubelet-healthz"], self.pki)
        )
        layout.kube_proxy_config.write_text(
            node_config.kube_proxy_yaml(
                layout, NODE_NAME, ports["kube-proxy-healthz"], ports["kube-proxy-metrics"]
            )
        )
        for who, subject in IDENTITIES.items():
            sign(self.pki, who, subject, "clientAuth")
        sign(self.pki, "kubelet-serving", f"/CN={NODE_NAME}", "serverAuth", f"IP:{node_config.GATEWAY}")
        api_port = json.loads((self.cluster_dir / "ports.json").read_text())["kube-apiserver"]
        for who in IDENTITIES:
            write_kubeconfig(layout.kubeconfig(who), self.pki, who, api_port)

    def make_bridge(self) -> None:
        """The bridge up front, so kubelet can serve on its address before the first pod exists."""
        if node_config.BRIDGE not in host_state.our_links():
            host_state.run("ip", "link", "add", node_config.BRIDGE, "type", "bridge", check=True)
        host_state.run(
            "ip", "addr", "replace", f"{node_config.GATEWAY}/{node_config.POD_CIDR.split('/')[1]}",
            "dev", node_config.BRIDGE, check=True,
        )  # fmt: skip
        host_state.run("ip", "link", "set", node_config.BRIDGE, "up", check=True)

    def commands(self, binaries: dict[str, Path]) -> dict[str, list[str]]:
        layout = self.layout
        return {
            "kubelet": [
                str(binaries["kubelet"]),
                f"--config={layout.kubelet_config}",
                f"--kubeconfig={layout.kubeconfig('kubelet')}",
                f"--root-dir={layout.kubelet_root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={node_config.GATEWAY}",
                "--v=1",
            ],
            "kube-proxy": [str(binaries["kube-proxy"]), f"--config={layout.kube_proxy_config}", "--v=1"],
            "kube-router": [
                str(binaries["kube-router"]),
                f"--kubeconfig={layout.kubeconfig('kube-router')}",
                f"--hostname-override={NODE_NAME}",
                "--run-router=false",
                "--run-service-proxy=false",
                "--run-firewall=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--health-port=0",
                "--metrics-port=0",
                "--v=1",
            ],
        }

    def node_object(self) -> str:
        """The Node, created before kubelet registers so it carries our pod CIDR and labels."""
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "moa.dev/pool": "real",
                },
            },
            "spec": {"podCIDR": node_config.POD_CIDR, "podCIDRs": [node_config.POD_CIDR]},
        }
        return yaml.safe_dump(node)

    def artifacts_volume(self) -> str:
        """A local PersistentVolume on this node for the artifacts, and its StorageClass."""
        path = self.layout.volumes / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        docs = [
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": STORAGE_CLASS},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "WaitForFirstConsumer",
            },
            local_volume(ARTIFACTS_PV, path, "100Gi"),
        ]
        return yaml.safe_dump_all(docs)

    # -- down ----------------------------------------------------------------------------------
    def down(self, kubectl: Path | None) -> list[str]:
        """Drain, stop, clean; returns what is left on the host (empty when clean)."""
        if kubectl is not None and self.running().get("kubelet"):
            self.drain(kubectl)
        self.stop_processes()
        if kubectl is not None:
            run_kubectl(
                kubectl, self.admin_kubeconfig, "delete", "node", NODE_NAME, "--ignore-not-found", check=False
            )
        if self.other_owner() is not None:  # host-wide state belongs to the node that runs
            return host_state.leftovers_under(self.dir)
        host_state.clean(self.dir)
        saved = self.dir / "sysctls.json"
        if saved.exists():
            host_state.write_sysctls(json.loads(saved.read_text()))
            saved.unlink()
        self.owner_file().unlink(missing_ok=True)
        return self.leftovers()

    def drain(self, kubectl: Path) -> None:
        """Cordon, delete every pod on the node, and wait until containerd holds no running task."""
        run_kubectl(kubectl, self.admin_kubeconfig, "cordon", NODE_NAME, check=False)
        run_kubectl(
            kubectl, self.admin_kubeconfig, "delete", "pods", "--all-namespaces",
            f"--field-selector=spec.nodeName={NODE_NAME}", "--grace-period=5", "--wait=false",
        )  # fmt: skip
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and self.sandboxes_left():
            time.sleep(1)

    def sandboxes_left(self) -> bool:
        """Pod network namespaces still mounted (kubelet stops a sandbox only after its containers)."""
        return bool(host_state.netns_mounts() & set(host_state.mounts_under(self.dir)))

    def stop_processes(self) -> None:
        """kube-router, kube-proxy, kubelet, containerd, then the shims (their rules, mounts and links
        are removed by host_state.clean, the one cleanup for all of them)."""
        running = self.running()
        for component in reversed(COMPONENTS):
            if component == "containerd" and component in running:
                self.kill_tasks()  # a container outlives its shim, so kill it while containerd can
            if component in running:
                stop(component, running[component], self.dir, self.say)
        for pid in host_state.processes_naming(self.dir):  # shims outlive containerd by design
            stop("containerd shim", pid, self.dir, self.say)
        (self.dir / "pids.json").unlink(missing_ok=True)

    def kill_tasks(self) -> None:
        """SIGKILL and delete every container task kubelet did not stop (a drain that timed out)."""
        ctr = [
            str(ensure_binaries(["ctr"], say=self.say)["ctr"]),
            "--address",
            str(self.layout.containerd_socket),
        ]
        ids = host_state.run(*ctr, "-n", "k8s.io", "tasks", "ls", "-q").stdout.split()
        for task in ids:
            host_state.run(*ctr, "-n", "k8s.io", "tasks", "kill", "--all", "--signal", "SIGKILL", task)
        for task in ids:
            host_state.run(*ctr, "-n", "k8s.io", "tasks", "delete", "--force", task)
        if ids:
            self.say(f"killed {len(ids)} container task(s) left after the drain")

    def status_lines(self) -> list[str]:
        running = self.running()
        lines = []
        for component in COMPONENTS:
            state = f"running  pid {running[component]}" if component in running else "stopped"
            lines.append(f"  {component:<24} {state}")
        return lines


def oci_archive_ref(archive: Path) -> tuple[str, str]:
    """(image name, manifest digest) an OCI archive holds, from its index.json; ("", "") when it
    names none (then it is imported every time)."""
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        index = json.load(member) if member is not None else {}
    manifest = next(iter(index.get("manifests") or []), {})
    name = (manifest.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
    return (name, manifest.get("digest", "")) if "/" in name else ("", "")


def local_volume(name: str, path: Path, size: str, claim: tuple[str, str] | None = None) -> dict:
    """A `local` PersistentVolume on the real node (kubelet applies the pod's fsGroup to it)."""
    spec: dict = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": STORAGE_CLASS,
        "local": {"path": str(path)},
        "nodeAffinity": {
            "required": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}
                        ]
                    }
                ]
            }
        },
    }
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}
