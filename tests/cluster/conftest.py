"""Fixtures for tests against a real Kubernetes API server.

By default the session starts moa's local control plane (`moa dev cluster up`, building the
binaries on a fresh machine) or reuses it when it already runs. `--kubeconfig PATH` or
`MOA_TEST_KUBECONFIG=PATH` runs the same tests against any existing cluster instead (kind:
see tests/cluster/kind.yaml). Either way moa's CRDs (manifests/crds/) and the upstream
Kubeflow/JobSet CRDs are applied first.

A missing Go toolchain makes these tests ERROR with the reason; they never skip silently.
Reusable fixtures: `kubeconfig` (path), `kube_api` (kubernetes.client.ApiClient), `namespace`
(a fresh one per test, deleted after), `kubectl` (our version-matched kubectl, bound to the
kubeconfig).

Tests marked `real_node` run pods for real: they use a second local cluster (MOA_TEST_NODE_CLUSTER,
default "moa-node") started with `--real-node`, through the `node_cluster`, `node_kubectl` and
`node_namespace` fixtures. They are skipped, with the reason, where the host cannot run a node
(not root, runc / CNI plugins / iptables / ipset missing: `make node-deps`), when the node's
binaries are not built yet and MOA_REAL_NODE=1 does not ask to build them (a cold build exceeds
CI's budget), or when the tests target an existing cluster (--kubeconfig).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from demo_spec import moa

REPO = Path(__file__).resolve().parents[2]
MOA_CRDS = REPO / "manifests" / "crds"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
# Stage pods on the real node: their user (images/*/Dockerfile USER, the operator's
# securityContext), the artifact claim the tests bind to a local volume, the base model on it.
UID = 65532
CLAIM = "artifacts"
MODEL = Path("checkpoints/coding_tui/final_merged")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=os.environ.get("MOA_TEST_KUBECONFIG"),
        help="run tests/cluster against this existing cluster instead of the local control plane "
        "(env: MOA_TEST_KUBECONFIG)",
    )


def given_kubeconfig(config: pytest.Config) -> str | None:
    # The option exists only when pytest starts in tests/cluster (pytest_addoption runs for initial
    # conftests only); the environment variable works from anywhere, e.g. `make test`.
    return config.getoption("--kubeconfig", default=None) or os.environ.get("MOA_TEST_KUBECONFIG")


_build_errors: list[Exception] = []


def real_node_skip_reason(config: pytest.Config) -> str | None:
    from moa.dev.node import missing_prerequisites

    if given_kubeconfig(config):
        return "real-node tests run on moa's own local real node, not on a given --kubeconfig"
    missing = missing_prerequisites()
    if missing:
        return f"this host cannot run a real node; missing: {'; '.join(missing)} (see `make node-deps`)"
    from moa.dev.k8s_build import NODE_BINARIES, locate

    unbuilt = [name for name in NODE_BINARIES if locate(name) is None]
    if unbuilt and not os.environ.get("MOA_REAL_NODE"):
        # Cold, these builds cost more than CI's budget on 2 shared cores (docs/cluster.md).
        return (
            f"real-node binaries not built yet ({', '.join(unbuilt)}): `moa dev cluster up --real-node` "
            "builds them once, or set MOA_REAL_NODE=1 to build them in this run"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    node_items = [item for item in items if item.get_closest_marker("real_node")]
    reason = real_node_skip_reason(config) if node_items else None
    for item in node_items if reason else []:
        item.add_marker(pytest.mark.skip(reason=reason))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries before the first test: a cold build (~20 min on 2 busy cores) must not
    count against one test's timeout. A failure is re-raised by the fixtures, so cluster tests ERROR."""
    active = [
        i for i in session.items if i.get_closest_marker("cluster") and not i.get_closest_marker("skip")
    ]
    if session.config.option.collectonly or not active:
        return
    from moa.dev.k8s_build import BINARIES, NODE_BINARIES, ensure_binaries

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    names = ["kubectl"] if given_kubeconfig(session.config) else list(BINARIES)
    if any(i.get_closest_marker("real_node") for i in active):
        names += NODE_BINARIES
    try:
        ensure_binaries(names, say=lambda msg: reporter.write_line(f"moa: {msg}") if reporter else print(msg))
    except Exception as exc:
        _build_errors.append(exc)


@pytest.fixture(scope="session")
def kubectl_bin() -> Path:
    from moa.dev.k8s_build import ensure_binaries

    if _build_errors:
        raise _build_errors[0]
    return ensure_binaries(["kubectl"])["kubectl"]


@pytest.fixture(scope="session")
def kubeconfig(request: pytest.FixtureRequest, kubectl_bin: Path) -> Iterator[Path]:
    from moa.dev.cluster import Cluster

    given = given_kubeconfig(request.config)
    with contextlib.ExitStack() as stack:
        if given:
            path = Path(given).expanduser()
        else:
            # Started here -> stopped by the last session using it (warm `up` is ~10 s); one that a
            # person started stays up. MOA_KEEP_CLUSTER=1 keeps it for debugging.
            local = Cluster(os.environ.get("MOA_TEST_CLUSTER", "moa"))
            stack.enter_context(local.session(stop_after=not os.environ.get("MOA_KEEP_CLUSTER")))
            path = local.kubeconfig
        install_crds(kubectl_bin, path)
        yield path


def install_crds(kubectl_bin: Path, kubeconfig: Path) -> None:
    from moa.dev.kubectl import apply_crds, install_upstream_crds

    moa_crds = [
        p for p in sorted(MOA_CRDS.glob("*.yaml")) if "kind: CustomResourceDefinition" in p.read_text()
    ]
    install_upstream_crds(kubectl_bin, kubeconfig)
    apply_crds(kubectl_bin, kubeconfig, moa_crds)


def kubectl_runner(kubectl_bin: Path, kubeconfig: Path) -> Kubectl:
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(kubectl_bin), f"--kubeconfig={kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def kubectl(kubectl_bin: Path, kubeconfig: Path) -> Kubectl:
    """kubectl("get", "pods", "-n", ns, check=True, input=None) -> CompletedProcess (text)."""
    return kubectl_runner(kubectl_bin, kubeconfig)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_api) -> Iterator[str]:
    """A fresh namespace (ready for pods: its default ServiceAccount exists), deleted after the test."""
    yield from fresh_namespace(kube_api, request.node.name)


def fresh_namespace(kube_api, test_name: str) -> Iterator[str]:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    stem = test_name.lower().replace("_", "-")
    name = (
        f"t-{''.join(ch for ch in stem if ch.isalnum() or ch == '-')[:40].strip('-')}-{uuid.uuid4().hex[:5]}"
    )
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"moa.dev/test": "1"}))
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            break
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield name
    core.delete_namespace(name, propagation_policy="Background")


# -- the real node ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def node_cluster(kubectl_bin: Path):
    """A local cluster with a real node (KWOK GPU nodes only besides it), kept up for the session:
    started here -> stopped by the last session using it, like `kubeconfig`'s cluster."""
    from moa.dev.cluster import Cluster

    local = Cluster(os.environ.get("MOA_TEST_NODE_CLUSTER", "moa-node"))
    with local.session(stop_after=not os.environ.get("MOA_KEEP_CLUSTER"), real_node=True):
        install_crds(kubectl_bin, local.kubeconfig)
        yield local


@pytest.fixture
def node_kubeconfig(node_cluster) -> Path:
    """The real-node cluster's kubeconfig, after making sure it is (still) up: a test may stop it."""
    node_cluster.up(real_node=True)
    return node_cluster.kubeconfig


@pytest.fixture
def node_kubectl(kubectl_bin: Path, node_kubeconfig: Path) -> Kubectl:
    return kubectl_runner(kubectl_bin, node_kubeconfig)


@pytest.fixture
def node_namespace(request: pytest.FixtureRequest, node_kubeconfig: Path) -> Iterator[str]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(node_kubeconfig))
    try:
        yield from fresh_namespace(client, request.node.name)
    finally:
        client.close()


# -- the operator as a real process, on a training namespace -------------------------------------
class OperatorProcess:
    """`moa operator run` as a real process, watching one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path) -> None:
        self.argv = [
            sys.executable, "-m", "moa.cli", "operator", "run", "--kubeconfig", str(kubeconfig),
            "--namespace", namespace, "--liveness-port", "0", "--metrics-port", "0", "--resync", "2",
        ]  # fmt: skip
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, exactly like a node dying."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def training_ns(namespace: str, kubectl: Callable[..., Any]) -> Iterator[str]:
    """The test namespace as a training namespace: Pod Security restricted + an artifact PVC."""
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    from moa.dev.fake_pods import artifact_volume

    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(artifact_volume(namespace)))
    yield namespace
    kubectl("delete", "pv", f"{namespace}-artifacts", "--wait=false", check=False)


@pytest.fixture
def operator(kubeconfig: Path, training_ns: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kubeconfig, training_ns, tmp_path / "operator.log")
    op.start()
    yield op
    op.stop()
    if os.environ.get("MOA_TEST_SHOW_OPERATOR_LOG"):
        print(op.log.read_text())


@pytest.fixture
def volume(node_cluster: Any, node_namespace: str, node_kubectl: Kubectl) -> Iterator[Path]:
    """A local PV on the real node for this test's artifact claim, holding the tiny base model."""
    from moa.dev.node import local_volume

    path = node_cluster.node.layout.volumes / node_namespace
    made = moa("dev", "tiny-model", "--output", str(path / MODEL))
    assert made.returncode == 0, made.stderr
    subprocess.run(["chown", "-R", f"{UID}:{UID}", str(path)], check=True)
    pv = local_volume(node_namespace, path, "20Gi", claim=(node_namespace, CLAIM))
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM, "namespace": node_namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": pv["spec"]["storageClassName"],
            "resources": {"requests": {"storage": "20Gi"}},
            "volumeName": node_namespace,
        },
    }
    node_kubectl("apply", "-f", "-", input=yaml.safe_dump_all([pv, claim]))
    yield path
    node_kubectl("delete", "pv", node_namespace, "--wait=false", check=False)
