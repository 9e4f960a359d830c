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

REPO = Path(__file__).resolve().parents[2]
MOA_CRDS = REPO / "manifests" / "crds"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries before the first test: a cold build (~20 min on 2 busy cores) must not
    count against one test's timeout. A failure is re-raised by the fixtures, so cluster tests ERROR."""
    if session.config.option.collectonly or not any(i.get_closest_marker("cluster") for i in session.items):
        return
    from moa.dev.k8s_build import BINARIES, ensure_binaries

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    names = ["kubectl"] if given_kubeconfig(session.config) else list(BINARIES)
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
    from moa.dev.kubectl import apply_crds, install_upstream_crds

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
        moa_crds = [
            p for p in sorted(MOA_CRDS.glob("*.yaml")) if "kind: CustomResourceDefinition" in p.read_text()
        ]
        install_upstream_crds(kubectl_bin, path)
        apply_crds(kubectl_bin, path, moa_crds)
        yield path


@pytest.fixture(scope="session")
def kubectl(kubectl_bin: Path, kubeconfig: Path) -> Kubectl:
    """kubectl("get", "pods", "-n", ns, check=True, input=None) -> CompletedProcess (text)."""

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
def kube_api(kubeconfig: Path):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    yield client
    client.close()


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube_api) -> Iterator[str]:
    """A fresh namespace (ready for pods: its default ServiceAccount exists), deleted after the test."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(kube_api)
    stem = request.node.name.lower().replace("_", "-")
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
