"""`moa dev cluster up|down|status|env`: a real Kubernetes control plane as local processes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the real upstream binaries
(built from their Go modules, see k8s_build.py); KWOK stands in for kubelets, so nodes and pod
lifecycles are simulated (fake_pods.py) while admission, validation, scheduling and every
controller are real. No Docker is needed.

Each component gets its own client certificate and kubeconfig so RBAC and Pod Security admission
behave as on a real cluster. State (certs, ports, etcd data, logs, pids) lives under
``~/.cache/moa/cluster/<name>/``; `up` on a running cluster is a quick no-op and `down` stops every
process it started and checks that their ports are free again.

kwokctl's binary runtime can use local binaries, but it runs every component as one admin
identity and disables admission unless asked; this launcher keeps per-component identities and
the default admission chain (PodSecurity included), and owns idempotency, sharing and port checks.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click
import yaml

from moa.dev import fake_pods, upstream_crds
from moa.dev.k8s_build import KUBERNETES_VERSION, ToolchainMissing, cache_root, ensure_binaries, file_lock

STARTED_BY_TESTS = "started-by-tests"  # marker: a test session started it, the last one stops it
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORTS = ("etcd", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
START_TIMEOUT_S = 90

# CN / O of each client certificate. KWOK writes status for many nodes and pods, so it is admin.
IDENTITIES = {
    "admin": ("moa-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
}


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

    # -- persistent state -------------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        """Ports chosen at first `up` and kept, so kubeconfigs stay valid across restarts."""
        path = self.dir / "ports.json"
        if path.exists():
            return json.loads(path.read_text())
        ports = {name: free_port() for name in PORTS}
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
    def is_up(self) -> bool:
        return bool(self.pids()) and set(self.running()) == set(COMPONENTS) and self.apiserver_ready()

    def apiserver_ready(self) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return http_ok(f"https://127.0.0.1:{self.ports()['kube-apiserver']}/readyz", ctx)

    def locked(self):
        """Serialises up/down of one cluster across processes (two test sessions, a human)."""
        return file_lock(
            self.dir / "lock", say, f"another process is starting or stopping cluster {self.name!r}"
        )

    def up(self) -> float:
        """Start every component (no-op when all run); returns the seconds it took."""
        started = time.monotonic()
        with self.locked():
            if self.is_up():
                say(f"cluster {self.name!r} is already up ({self.kubeconfig})")
            else:
                try:
                    self._start()
                except BaseException:
                    self._stop()  # a half-started cluster leaves no process behind
                    raise
                say(f"cluster {self.name!r} is up in {time.monotonic() - started:.1f} s")
        return time.monotonic() - started

    @contextlib.contextmanager
    def session(self, stop_after: bool = True) -> Iterator[Cluster]:
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
            self.up()
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

    def _start(self) -> None:
        if self.running():
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
        insecure = ssl._create_unverified_context()  # component health ports use self-signed certs
        # etcd, then the API server, then everything that talks to it (started together).
        for batch in (COMPONENTS[:1], COMPONENTS[1:2], COMPONENTS[2:]):
            for component in batch:
                say(f"starting {component}")
                pids[component] = spawn(
                    [str(binaries[component]), *self.flags(component, ports)], self.log(component)
                )
            self.save_pids(pids)
            for component in batch:
                url, ctx = self.health(component, ports, insecure)
                self.wait(component, pids[component], lambda url=url, ctx=ctx: http_ok(url, ctx))

        kubectl = binaries["kubectl"]
        nodes = resources.files("moa.dev.kwok").joinpath("nodes.yaml").read_text()
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

    def health(self, component: str, ports: dict[str, int], insecure: ssl.SSLContext):
        if component == "etcd":
            return f"http://127.0.0.1:{ports['etcd']}/health", None
        if component == "kube-apiserver":
            ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
            ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
            return f"https://127.0.0.1:{ports[component]}/readyz", ctx
        if component == "kwok":
            return f"http://127.0.0.1:{ports[component]}/healthz", None
        return f"https://127.0.0.1:{ports[component]}/healthz", insecure

    def wait(self, component: str, pid: int, ready) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not alive(pid):
                raise RuntimeError(f"{component} exited during start-up:\n{tail(self.log(component))}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{component} not healthy after {START_TIMEOUT_S} s:\n{tail(self.log(component))}")

    def down(self) -> list[str]:
        """Stop every component, dependents first (TERM, KILL after 15 s); returns ports still bound."""
        with self.locked():
            return self._stop()

    def _stop(self) -> list[str]:
        running = self.running()
        for component in reversed(COMPONENTS):
            pid = running.get(component)
            if pid is None:
                continue
            say(f"stopping {component} (pid {pid})")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while is_ours(pid, self.dir) and time.monotonic() < deadline:
                time.sleep(0.05)
            if is_ours(pid, self.dir):
                say(f"{component} ignored SIGTERM; killing it")
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when this process started it (pytest fixture)
        (self.dir / "pids.json").unlink(missing_ok=True)
        if not (self.dir / "ports.json").exists():
            return []
        return [f"{name}:{port}" for name, port in self.ports().items() if not port_free(port)]

    def flags(self, component: str, ports: dict[str, int]) -> list[str]:
        pki, d = self.pki, self.dir
        if component == "etcd":
            return [
                f"--name={self.name}",
                f"--data-dir={d / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{ports['etcd']}",
                f"--advertise-client-urls=http://127.0.0.1:{ports['etcd']}",
                f"--listen-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{ports['etcd-peer']}",
                f"--initial-cluster={self.name}=http://127.0.0.1:{ports['etcd-peer']}",
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
                "--endpoint-reconciler-type=none",  # a loopback address is not a valid endpoint
                "--profiling=false",
                "--v=0",
            ]
        common = [
            f"--kubeconfig={d / f'{component}.kubeconfig'}",
            f"--authentication-kubeconfig={d / f'{component}.kubeconfig'}",
            f"--authorization-kubeconfig={d / f'{component}.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports[component]}",
            f"--cert-dir={d / 'serving' / component}",
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
            ]
        if component == "kube-scheduler":
            return common
        if component == "kwok":
            return [
                f"--kubeconfig={d / 'kwok.kubeconfig'}",
                f"--config={d / 'kwok-stages.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{ports['kwok']}",
            ]
        raise ValueError(component)


# -- processes and ports ------------------------------------------------------------------------
def spawn(cmd: list[str], log: Path) -> int:
    """Start a detached process (own session: it outlives `moa dev cluster up` and Ctrl-C)."""
    with log.open("wb") as out:  # one start per log file: the current run is what matters
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def alive(pid: int) -> bool:
    """Running and not a zombie (a just-spawned child may not show its final command line yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_ours(pid: int, state_dir: Path) -> bool:
    """Alive and started with our state dir in its flags (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(state_dir) in cmdline and alive(pid)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


# -- certificates and kubeconfigs ----------------------------------------------------------------
def openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def write_pki(pki: Path) -> None:
    """CA, API server serving cert, front-proxy client cert (aggregation layer), one client cert
    per identity, service-account key pair. Only missing files are made, so certs survive restarts."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    if not (pki / "ca.crt").exists():
        ca = ["-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"), "-days", "3650"]
        openssl("req", "-x509", *ec, *ca, "-subj", "/CN=moa-local-ca")
    sans = ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc"]
    sans += ["DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", f"IP:{SERVICE_IP}"]
    leaves = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth", ",".join(sans)),
        "front-proxy-client": ("/CN=front-proxy-client", "clientAuth", None),
    }
    for who, (cn, org) in IDENTITIES.items():
        leaves[who] = (f"/O={org}/CN={cn}" if org else f"/CN={cn}", "clientAuth", None)
    for name, (subject, usage, san) in leaves.items():
        if (pki / f"{name}.crt").exists():
            continue
        ext, csr = pki / f"{name}.ext", pki / f"{name}.csr"
        ext.write_text(
            f"keyUsage=critical,digitalSignature\nextendedKeyUsage={usage}\n"
            + (f"subjectAltName={san}\n" if san else "")
        )
        openssl("req", "-new", *ec, "-keyout", str(pki / f"{name}.key"), "-out", str(csr), "-subj", subject)
        ca = ["-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "3650"]
        openssl("x509", "-req", "-in", str(csr), *ca, "-extfile", str(ext), "-out", str(pki / f"{name}.crt"))
        ext.unlink()
        csr.unlink()
    if not (pki / "sa.pub").exists():
        openssl(
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-out",
            str(pki / "sa.key"),
        )
        openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def write_kubeconfig(path: Path, pki: Path, who: str, port: int) -> None:
    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "moa",
                "cluster": {
                    "server": f"https://127.0.0.1:{port}",
                    "certificate-authority-data": b64("ca.crt"),
                },
            }
        ],
        "users": [
            {
                "name": who,
                "user": {"client-certificate-data": b64(f"{who}.crt"), "client-key-data": b64(f"{who}.key")},
            }
        ],
        "contexts": [{"name": "moa", "context": {"cluster": "moa", "user": who}}],
        "current-context": "moa",
    }
    path.write_text(yaml.safe_dump(config))


# -- kubectl -------------------------------------------------------------------------------------
def run_kubectl(
    kubectl: Path, kubeconfig: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig}", *args], input=input, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def apply_crds(kubectl: Path, kubeconfig: Path, files: list[Path]) -> None:
    """Server-side apply (big CRDs exceed the client-side last-applied annotation) and wait Established."""
    if not files:
        return
    args = [arg for f in files for arg in ("-f", str(f))]
    out = run_kubectl(kubectl, kubeconfig, "apply", "--server-side", "--force-conflicts", "-o", "name", *args)
    names = out.stdout.split()
    run_kubectl(kubectl, kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *names)


def install_upstream_crds(kubectl: Path, kubeconfig: Path) -> None:
    """The Kubeflow/JobSet CRDs, unless all are there already (applying them unchanged costs seconds)."""
    present = run_kubectl(kubectl, kubeconfig, "get", "crd", *upstream_crds.NAMES, "-o", "name", check=False)
    if present.returncode != 0 or len(present.stdout.split()) != len(upstream_crds.NAMES):
        apply_crds(kubectl, kubeconfig, upstream_crds.crd_files())


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
@click.pass_obj
def up(c: Cluster) -> None:
    """Start the cluster (builds the binaries on first use); a no-op when it already runs."""
    c.up()
    (c.dir / STARTED_BY_TESTS).unlink(missing_ok=True)  # started or claimed by a person: tests leave it up
    click.echo(f"export KUBECONFIG={c.kubeconfig}")


@cluster.command()
@click.option("--purge", is_flag=True, help="Also delete the state dir (certs, etcd data, logs).")
@click.pass_obj
def down(c: Cluster, purge: bool) -> None:
    """Stop every component and check that no port stays bound."""
    busy = c.down()
    if busy:
        raise click.ClickException(f"ports still bound after stopping: {', '.join(busy)}")
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
    for component in COMPONENTS:
        where = f"127.0.0.1:{ports[component]}" if component in ports else "-"
        state = f"running  pid {running[component]}" if component in running else "stopped"
        click.echo(f"  {component:<24} {state:<18} {where}")
    if "kube-apiserver" in running:
        click.echo(f"  api server ready: {'yes' if c.apiserver_ready() else 'no'}; KUBECONFIG={c.kubeconfig}")


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
