"""What a real node leaves on the host, found and removed.

A node touches state that outlives its processes: mounts (container root file systems, pod
volumes, network namespaces), iptables chains (kubelet's and kube-proxy's KUBE-*, kube-router's
KUBE-ROUTER-*/KUBE-POD-FW-*/KUBE-NWPLCY-*, the bridge plugin's CNI-* NAT chains), ipsets, the
bridge and its veths, pod cgroups and a few sysctls. `leftovers` lists what is still there;
`clean` removes only what is provably ours (our state dir, our bridge, our CNI network's chains),
so another program's containers on the same machine are left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from moa.dev.node_config import BRIDGE, NETWORK

TABLES = ("filter", "nat", "mangle", "raw")
FAMILIES = ("iptables", "ip6tables")  # kubelet and kube-proxy program both
CHAIN_PREFIXES = ("KUBE-",)  # kubelet, kube-proxy and kube-router all name their chains KUBE-*
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINERD_RUN = Path("/run/containerd")  # shim sockets go here whatever the config says
POD_CGROUP = "kubepods"  # kubelet's cgroupsPerQOS parent (cgroupfs driver)
# What kubelet rewrites at start (protectKernelDefaults: false), plus what pod networking needs.
SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
)


def run(*cmd: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result


# -- finding -------------------------------------------------------------------------------------
def mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if (p + "/").startswith(prefix)]


def processes_naming(root: Path) -> list[int]:
    """Pids whose command line names ROOT (our components and the containerd shims they start)."""
    needle, found = str(root).encode(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return sorted(found)


def our_chains(table: str, family: str = "iptables") -> list[str]:
    """KUBE-* chains, and the CNI-* chains whose jump rule names our CNI network."""
    rules = run(family, "-w", "-t", table, "-S").stdout.splitlines()
    chains = [line.split()[1] for line in rules if line.startswith("-N ")]
    ours = [c for c in chains if c.startswith(CHAIN_PREFIXES)]
    marker = f'name: \\"{NETWORK}\\"'
    for line in rules:
        jump = re.search(r" -j (CNI-\S+)", line)
        if jump and marker in line:
            ours.append(jump[1])
    return sorted(set(ours) & set(chains))


def our_ipsets() -> list[str]:
    names = run("ipset", "list", "-n").stdout.split() if shutil.which("ipset") else []
    return [n for n in names if n.upper().startswith(("KUBE-", "INET6:KUBE-"))]


def our_links() -> list[str]:
    """The bridge and every interface enslaved to it (the host ends of pod veths)."""
    out = run("ip", "-j", "link", "show").stdout or "[]"
    return [link["ifname"] for link in json.loads(out) if BRIDGE in (link["ifname"], link.get("master"))]


def pod_cgroups() -> list[Path]:
    return sorted(p for p in CGROUP_ROOT.glob(f"*/{POD_CGROUP}") if p.is_dir())


def netns_mounts() -> set[str]:
    """Mount points of network namespaces (nsfs), wherever they are."""
    found = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[fields.index("-") + 1] == "nsfs":
            found.add(fields[4])
    return found


def leftovers_under(root: Path) -> list[str]:
    """Mounts (pod network namespaces named apart) and processes of the node whose state dir is ROOT."""
    netns = netns_mounts()
    found = [f"netns {m}" if m in netns else f"mount {m}" for m in mounts_under(root)]
    return found + [f"process {pid} ({cmdline(pid)})" for pid in processes_naming(root)]


def leftovers(root: Path) -> list[str]:
    """Everything of a real node under ROOT still on the host, and the host-wide state any real
    node leaves (chains, ipsets, links, pod cgroups); empty after a clean `down`."""
    found = leftovers_under(root)
    found += [f"{f} -t {t} chain {c}" for f in FAMILIES for t in TABLES for c in our_chains(t, f)]
    found += [f"ipset {s}" for s in our_ipsets()]
    found += [f"link {name}" for name in our_links()]
    found += [f"cgroup {p}" for p in pod_cgroups()]
    return found


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    return "gone"


# -- removing ------------------------------------------------------------------------------------
def unmount_all(root: Path) -> None:
    """Deepest first, lazily: a shim that has just died may still hold a file system busy."""
    for point in sorted(mounts_under(root), key=lambda p: p.count("/"), reverse=True):
        run("umount", "-l", point)


def remove_chains() -> None:
    """Drop the jumps into our chains from every chain, then flush and delete them."""
    for family in FAMILIES:
        for table in TABLES:
            chains = our_chains(table, family)
            if not chains:
                continue
            for line in run(family, "-w", "-t", table, "-S").stdout.splitlines():
                parts = line.split()
                if parts[0] == "-A" and parts[1] not in chains and any(f"-j {c}" in line for c in chains):
                    run(family, "-w", "-t", table, "-D", *shlex.split(line)[1:])  # -S quotes like a shell
            for chain in chains:
                run(family, "-w", "-t", table, "-F", chain)
            for chain in chains:
                run(family, "-w", "-t", table, "-X", chain)


def remove_ipsets() -> None:
    for name in our_ipsets():
        run("ipset", "destroy", name)


def remove_links() -> None:
    for name in reversed(our_links()):  # veths first, the bridge last
        run("ip", "link", "delete", name)


def remove_pod_cgroups() -> None:
    """rmdir bottom-up (cgroup v1 directories go away only when empty of processes and children)."""
    for top in pod_cgroups():
        remove_empty_dirs(top)


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (Path("/proc/sys") / name).read_text().strip()
    return values


def write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        with contextlib.suppress(OSError):
            (Path("/proc/sys") / name).write_text(value)


def remove_empty_dirs(top: Path) -> None:
    """rmdir every empty folder under TOP and TOP itself, bottom-up (busy ones stay)."""
    if not top.is_dir():
        return
    for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        top.rmdir()


def clean(root: Path) -> None:
    """Remove every leftover of the node under ROOT (processes must be stopped first)."""
    unmount_all(root)
    remove_empty_dirs(CONTAINERD_RUN)  # shim sockets and client fifos: fixed paths, empty by now
    remove_chains()
    remove_ipsets()
    remove_links()
    remove_pod_cgroups()
