"""`moa dev cluster up|down|status|env`: a real Kubernetes control plane as local processes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real upstream binaries
(built from their Go modules, see k8s_build.py); KWOK stands in for kubelets, so nodes and pod
lifecycles are simulated (fake_pods.py) while admission, validation, scheduling and every
controller are real. No Docker is needed.

This module owns the cluster's state and lifecycle and the CLI; what each component runs with is
in components.py, certificates in pki.py, processes and ports in processes.py. State (certs,
ports, etcd data, logs, pids) lives under ``~/.cache/moa/cluster/<name>/``; `up` on a running
cluster is a quick no-op and `down` stops every process it started and checks that their ports
are free again.

kwokctl's binary runtime can use local binaries, but it runs every component as one admin
identity and disables admission unless asked; this launcher keeps per-component identities and
the default admission chain (PodSecurity included), and owns idempotency, sharing and port checks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click
import yaml

from moa.dev import components, fake_pods
from moa.dev.addons import ADDONS, Addon, resolve
from moa.dev.addons import LABEL as ADDON_LABEL
from moa.dev.controllers import ensure_controllers
from moa.dev.k8s_build import KUBERNETES_VERSION, ToolchainMissing, cache_root, ensure_binaries, file_lock
from moa.dev.kubectl import apply_crds, install_upstream_crds, run_kubectl
from moa.dev.node import RealNode
from moa.dev.pki import IDENTITIES, client_context, write_kubeconfig, write_pki
from moa.dev.processes import free_port, http_ok, is_ours, port_free, spawn, stop, wait_ready

STARTED_BY_TESTS = "started-by-tests"  # marker: a test session started it, the last one stops it
WITH_REAL_NODE = "real-node"  # marker: `up --real-node` made it; `up` and `down` include the node


def say(msg: str) -> None:
    click.echo(f"moa dev cluster: {msg}", err=True)


@dataclass
class Cluster:
    name: str

    @property
    def dir(self) -> Path:
        return cache_root() / "cluster" / self.name

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.dir / "pki"

    def log(self, component: str) -> Path:
        return self.dir / "logs" / f"{component}.log"

    @property
    def has_real_node(self) -> bool:
        return (self.dir / WITH_REAL_NODE).exists()

    @property
    def node(self) -> RealNode:
        return RealNode(self.dir, say)

    # -- persistent state -------------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """Ports chosen at first `up` and kept, so kubeconfigs stay valid across restarts (ports of
        components added since, such as addons, are chosen when first needed)."""
        path = self.dir / "ports.json"
        ports: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        names = [*components.PORTS, *(p for addon in ADDONS.values() for p in addon.ports())]
        if set(names) - set(ports):
            ports.update({name: free_port() for name in names if name not in ports})
            self.dir.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(ports, indent=2))
        return ports

    def free_ports(self) -> dict[str, int]:
        """The kept ports, with any that another program took meanwhile replaced (kubeconfigs are
        rewritten on every start, so a moved port costs nothing)."""
        ports = self.ports()
        moved = {name: free_port() for name, port in ports.items() if not port_free(port)}
        if moved:
            say(f"ports taken by other programs, moving: {', '.join(f'{n}:{ports[n]}' for n in moved)}")
            ports.update(moved)
            (self.dir / "ports.json").write_text(json.dumps(ports, indent=2))
        return ports

    def pids(self) -> dict[str, int]:
        path = self.dir / "pids.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def save_pids(self, pids: dict[str, int]) -> None:
        (self.dir / "pids.json").write_text(json.dumps(pids, indent=2))

    def running(self) -> dict[str, int]:
        """Components whose recorded pid is alive and still one of ours (its command line names our dir)."""
        return {c: pid for c, pid in self.pids().items() if is_ours(pid, self.dir)}

    # -- lifecycle ------------------------------------------------------------------------
    def control_plane_up(self) -> bool:
        return (
            bool(self.pids()) and set(self.running()) >= set(components.COMPONENTS) and self.apiserver_ready()
        )

    def is_up(self) -> bool:
        return self.control_plane_up() and (not self.has_real_node or self.node.is_up())

    def apiserver_ready(self) -> bool:
        return http_ok(f"https://127.0.0.1:{self.ports()['kube-apiserver']}/readyz", client_context(self.pki))

    def locked(self):
        """Serialises up/down of one cluster across processes (two test sessions, a human)."""
        return file_lock(
            self.dir / "lock", say, f"another process is starting or stopping cluster {self.name!r}"
        )

    def up(self, addons: Iterable[str] = (), real_node: bool = False, images: tuple[Path, ...] = ()) -> float:
        """Start every component and the named addons (no-op for what runs already); returns the
        seconds it took. Addons already running stay up. REAL_NODE adds a node that runs pods for
        real (node.py) and stays part of the cluster until `down`; IMAGES are image archives to
        import into it."""
        started = time.monotonic()
        wanted = resolve(addons)
        with self.locked():
            if real_node:
                self.dir.mkdir(parents=True, exist_ok=True)
                (self.dir / WITH_REAL_NODE).touch()
            if self.is_up():
                say(f"cluster {self.name!r} is already up ({self.kubeconfig})")
                if images:
                    self.node.import_images(images)
            elif self.has_real_node and self.control_plane_up():
                self.node.up(ensure_binaries(["kubectl"], say=say)["kubectl"], images)
                say(f"real node of cluster {self.name!r} is up in {time.monotonic() - started:.1f} s")
            else:
                try:
                    self._start(wanted, images)
                except BaseException:
                    self._stop()  # a half-started cluster leaves no process behind
                    raise
                say(f"cluster {self.name!r} is up in {time.monotonic() - started:.1f} s")
            missing = [a for a in wanted if a.name not in self.running()]
            if missing:
                try:
                    self._start_addons(missing)
                except BaseException:
                    self._stop_addons([a.name for a in missing])
                    raise
        return time.monotonic() - started

    @contextlib.contextmanager
    def session(
        self, stop_after: bool = True, addons: Iterable[str] = (), real_node: bool = False
    ) -> Iterator[Cluster]:
        """Keep the cluster up while a test session uses it. Each session holds a shared lock on
        users.lock; the last one out stops a cluster that a session started, never one a person
        started with `moa dev cluster up`, and never while another session still uses it."""
        marker = self.dir / STARTED_BY_TESTS
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "users.lock").open("w") as users:
            fcntl.flock(users, fcntl.LOCK_SH)
            with self.locked():
                if not self.is_up():
                    marker.touch()
            self.up(addons, real_node=real_node)
            try:
                yield self
            finally:
                try:
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    last = True
                except BlockingIOError:
                    last = False
                if last and stop_after and marker.exists():
                    self.down()
                    marker.unlink(missing_ok=True)

    def _start(self, addons: list[Addon], images: tuple[Path, ...] = ()) -> None:
        if self.running() and not self.has_real_node:
            say("some components are running but the cluster is not healthy; restarting it")
            self._stop()
        binaries = ensure_binaries(say=say)
        ports = self.free_ports()
        write_pki(self.pki)
        for who in IDENTITIES:
            write_kubeconfig(self.dir / f"{who}.kubeconfig", self.pki, who, ports["kube-apiserver"])
        self.kubeconfig.write_text((self.dir / "admin.kubeconfig").read_text())
        stages = self.dir / "kwok-stages.yaml"
        stages.write_text(fake_pods.stages_yaml())
        (self.dir / "logs").mkdir(exist_ok=True)

        pids: dict[str, int] = {}
        for batch in components.START_BATCHES:  # each batch starts together, then is waited for
            for component in batch:
                pids[component] = self._spawn(component, binaries[component], ports)
            self.save_pids(pids)
            for component in batch:
                self._wait(component, pids[component], ports)

        kubectl = binaries["kubectl"]
        nodes = kwok_nodes(gpu_only=self.has_real_node)
        run_kubectl(
            kubectl, self.kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", "-", input=nodes
        )
        try:
            install_upstream_crds(kubectl, self.kubeconfig)
        except ToolchainMissing as exc:
            say(f"Kubeflow/JobSet CRDs not installed: {exc}")
        run_kubectl(
            kubectl, self.kubeconfig, "wait", "--for=condition=Ready", "node", "--all", "--timeout=60s"
        )
        # Webhooks of addons that no longer run would fail every request they match.
        stale = ",".join(sorted(set(ADDONS) - {a.name for a in addons}))
        if stale:
            selector = f"{ADDON_LABEL} in ({stale})"
            kinds = "mutatingwebhookconfigurations,validatingwebhookconfigurations"
            run_kubectl(kubectl, self.kubeconfig, "delete", kinds, "-l", selector, "--ignore-not-found")
        if self.has_real_node:
            self.node.up(kubectl, images)

    def _start_addons(self, addons: list[Addon]) -> None:
        """Per addon: its CRDs and namespace, the process, then its webhooks (once it serves them)."""
        ensure_controllers([a.name for a in addons], say=say)
        kubectl = ensure_binaries(["kubectl"], say=say)["kubectl"]
        ports = self.ports()
        write_pki(self.pki)  # a cluster first started before an addon existed lacks its certificate
        ca = (self.pki / "ca.crt").read_bytes()
        pids = self.pids()
        for addon in addons:
            write_kubeconfig(
                self.dir / f"{addon.name}.kubeconfig", self.pki, addon.name, ports["kube-apiserver"]
            )
            apply_crds(kubectl, self.kubeconfig, addon.crd_files())
            setup = yaml.safe_dump_all(addon.setup_objects())
            run_kubectl(kubectl, self.kubeconfig, "apply", "-f", "-", input=setup)
            say(f"starting {addon.name}")
            pids[addon.name] = spawn(addon.command(self.dir, ports), self.log(addon.name))
            self.save_pids(pids)
            url = addon.health_url(ports)
            wait_ready(addon.name, pids[addon.name], lambda url=url: http_ok(url, None), self.log(addon.name))
            hooks = addon.webhook_configurations(addon.webhook_manifests(), ports, ca)
            objects = addon.objects() if addon.objects else []  # after its webhooks: they validate them
            for docs in (hooks, objects):
                if docs:
                    apply = ("apply", "--server-side", "--force-conflicts", "-f", "-")
                    run_kubectl(kubectl, self.kubeconfig, *apply, input=yaml.safe_dump_all(docs))

    def _spawn(self, component: str, binary: Path, ports: dict[str, int]) -> int:
        say(f"starting {component}")
        return spawn(
            [str(binary), *components.flags(component, self.name, self.dir, ports)], self.log(component)
        )

    def _wait(self, component: str, pid: int, ports: dict[str, int]) -> None:
        url, ctx = components.health(component, ports, self.pki)
        wait_ready(component, pid, lambda: http_ok(url, ctx), self.log(component))

    def restart(self, component: str) -> float:
        """Stop one core component and start it again with the same flags, as a crash and a
        supervisor would (fault drills); returns the seconds until it was healthy again."""
        if component not in components.COMPONENTS:
            raise ValueError(
                f"unknown component {component!r}; expected one of {', '.join(components.COMPONENTS)}"
            )
        started = time.monotonic()
        with self.locked():
            pids, ports = self.pids(), self.ports()
            if component in self.running():
                stop(component, pids[component], self.dir, say)
            pids[component] = self._spawn(component, ensure_binaries([component], say=say)[component], ports)
            self.save_pids(pids)
            self._wait(component, pids[component], ports)
        return time.monotonic() - started

    def down(self) -> list[str]:
        """Stop every component, dependents first (TERM, KILL after 15 s); returns ports still bound."""
        with self.locked():
            return self._stop()

    def _stop_addons(self, names: Iterable[str]) -> None:
        running = self.running()
        for name in names:
            if name in running:
                stop(name, running[name], self.dir, say)

    def _stop(self) -> list[str]:
        """Stop the node (drained through the API while it still runs), the addons, the control plane."""
        left = []
        if self.has_real_node or self.node.pids():
            kubectl = ensure_binaries(["kubectl"], say=say)["kubectl"]
            left = self.node.down(kubectl if self.running().get("kube-apiserver") else None)
        self._stop_addons(reversed([c for c in self.pids() if c not in components.COMPONENTS]))
        running = self.running()
        for component in reversed(components.COMPONENTS):
            pid = running.get(component)
            if pid is None:
                continue
            stop(component, pid, self.dir, say)
        (self.dir / "pids.json").unlink(missing_ok=True)
        if not (self.dir / "ports.json").exists():
            return left
        return left + [f"port {name}:{port}" for name, port in self.ports().items() if not port_free(port)]


def kwok_nodes(gpu_only: bool) -> str:
    """moa's simulated nodes; with a real node only the GPU pool, so CPU pods run for real."""
    text = resources.files("moa.dev.kwok").joinpath("nodes.yaml").read_text()
    if not gpu_only:
        return text
    docs = [d for d in yaml.safe_load_all(text) if d and d["metadata"]["labels"].get("moa.dev/pool") == "gpu"]
    return yaml.safe_dump_all(docs)


# -- CLI -----------------------------------------------------------------------------------------
@click.group()
@click.option(
    "--name", default="moa", show_default=True, help="Cluster name (state under ~/.cache/moa/cluster/NAME)."
)
@click.pass_context
def cluster(ctx: click.Context, name: str) -> None:
    """A real local control plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes)."""
    ctx.obj = Cluster(name)


@cluster.command()
@click.option(
    "--with",
    "addons",
    default="",
    metavar="ADDONS",
    help=f"Comma-separated controllers to run too: {', '.join(ADDONS)} (built from their Go modules).",
)
@click.option(
    "--real-node",
    is_flag=True,
    help="Add a node that runs pods for real (containerd, kubelet, kube-proxy, kube-router; needs root "
    "and `make node-deps`). The cluster keeps it until `down`.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="OCI/Docker image archive to import into the real node (repeatable).",
)
@click.pass_obj
def up(c: Cluster, addons: str, real_node: bool, images: tuple[Path, ...]) -> None:
    """Start the cluster (builds the binaries on first use); a no-op for what already runs."""
    if images and not (real_node or c.has_real_node):
        raise click.UsageError("--image needs --real-node (images run only on the real node)")
    try:
        c.up(addons.split(","), real_node=real_node, images=images)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--with") from None
    (c.dir / STARTED_BY_TESTS).unlink(missing_ok=True)  # started or claimed by a person: tests leave it up
    click.echo(f"export KUBECONFIG={c.kubeconfig}")


@cluster.command()
@click.option("--purge", is_flag=True, help="Also delete the state dir (certs, etcd data, logs).")
@click.pass_obj
def down(c: Cluster, purge: bool) -> None:
    """Stop every component and check that no port stays bound."""
    busy = c.down()
    if busy:
        raise click.ClickException(f"left behind after stopping: {', '.join(busy)}")
    (c.dir / WITH_REAL_NODE).unlink(missing_ok=True)
    if purge and c.dir.exists():
        shutil.rmtree(c.dir)
    say(f"cluster {c.name!r} is down" + (" and purged" if purge else ""))


@cluster.command()
@click.pass_obj
def status(c: Cluster) -> None:
    """Which components run, on which ports, and whether the API server is ready."""
    running = c.running()
    ports = c.ports() if (c.dir / "ports.json").exists() else {}
    click.echo(f"cluster {c.name!r} (Kubernetes {KUBERNETES_VERSION}) state: {c.dir}")
    for component in [*components.COMPONENTS, *(a for a in ADDONS if a in running)]:
        port = ports.get(component) or ports.get(f"{component}-webhook")
        where = f"127.0.0.1:{port}" if port else "-"
        state = f"running  pid {running[component]}" if component in running else "stopped"
        click.echo(f"  {component:<24} {state:<18} {where}")
    if c.has_real_node:
        click.echo("\n".join(c.node.status_lines()))
    if "kube-apiserver" in running:
        click.echo(f"  api server ready: {'yes' if c.apiserver_ready() else 'no'}; KUBECONFIG={c.kubeconfig}")


@cluster.command()
@click.pass_obj
def leftovers(c: Cluster) -> None:
    """List what a real node left on the host (mounts, processes, iptables chains, ipsets, links,
    cgroups); exits 1 when anything is there."""
    found = c.node.leftovers()
    for item in found:
        click.echo(item)
    if found:
        raise SystemExit(1)
    say("no leftovers of a real node on this host")


@cluster.command()
@click.pass_obj
def env(c: Cluster) -> None:
    """Shell lines that point kubectl (ours, first on PATH) at the cluster: eval "$(moa dev cluster env)"."""
    kubectl = ensure_binaries(["kubectl"], say=say)["kubectl"]
    click.echo(f"export KUBECONFIG={c.kubeconfig}")
    click.echo(f'export PATH="{kubectl.parent}:$PATH"')


@cluster.command("kwok-manifests")
def kwok_manifests() -> None:
    """Print moa's KWOK Stages and simulated nodes, to apply on another cluster running KWOK (e.g. kind)."""
    click.echo(fake_pods.stages_yaml().rstrip() + "\n---")
    click.echo(resources.files("moa.dev.kwok").joinpath("nodes.yaml").read_text())
