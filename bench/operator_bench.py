"""What the operator benchmarks share: a local cluster they stop unless asked to keep it, a
training namespace, simulated trainings, the operator as a process, and waiting for Ready."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client, config

from moa.api.stages import STAGE_NAMES, StageSummary
from moa.dev import fake_pods
from moa.dev.cluster import Cluster
from moa.dev.k8s_build import ensure_binaries
from moa.dev.kubectl import apply_crds

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def bench_cluster(name: str, keep: bool) -> Iterator[tuple[Cluster, client.ApiClient]]:
    """The local cluster NAME with moa's CRDs; stopped afterwards if it was started here (unless KEEP)."""
    cluster = Cluster(name)
    started_here = not cluster.is_up()
    cluster.up()
    try:
        kubectl = ensure_binaries(["kubectl"])["kubectl"]
        apply_crds(kubectl, cluster.kubeconfig, sorted((REPO / "manifests" / "crds").glob("moa.dev_*.yaml")))
        yield cluster, config.new_client_from_config(config_file=str(cluster.kubeconfig))
    finally:
        if started_here and not keep:
            cluster.down()


def training_namespace(core: client.CoreV1Api, ns: str) -> None:
    """A Pod Security `restricted` namespace with the artifact claim the trainings name."""
    core.create_namespace(
        {"metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    pv, pvc = fake_pods.artifact_volume(ns)
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim(ns, pvc)


def drop_namespace(core: client.CoreV1Api, ns: str) -> None:
    core.delete_namespace(ns)
    core.delete_persistent_volume(f"{ns}-artifacts")


def training(name: str, duration: str) -> dict[str, Any]:
    """An AdapterTraining whose every stage is a KWOK pod running DURATION (no GPUs) and, as a
    real stage does, reporting its result in its termination message: a summary carrying the
    stage's index, so that a lost result is visible."""
    return {
        "apiVersion": "moa.dev/v1alpha1",
        "kind": "AdapterTraining",
        "metadata": {"name": name},
        "spec": {
            "language": "python",
            "storage": {"claimName": "artifacts"},
            "data": {"sources": ["pypi:six@1.16.0"]},
            "resources": {
                "gpus": 0,
                "cpu": "100m",
                "memory": "128Mi",
                "sandbox": {"cpu": "100m", "memory": "128Mi"},
                "podAnnotations": {
                    stage: fake_pods.annotations(
                        duration=duration,
                        message=StageSummary(
                            stage=stage, status="succeeded", metrics={"index": float(i)}
                        ).compact(),  # type: ignore[arg-type]
                    )
                    for i, stage in enumerate(STAGE_NAMES)
                },
            },
        },
    }


def start_operator(
    kubeconfig: Path, ns: str, metrics_port: int, resync: float, log: Path
) -> subprocess.Popen[bytes]:
    """`moa operator run` on NS, its output appended to LOG."""
    return subprocess.Popen(
        [sys.executable, "-m", "moa.cli", "operator", "run", "--kubeconfig", str(kubeconfig), "--namespace", ns,
         "--liveness-port", "0", "--metrics-port", str(metrics_port), "--resync", str(resync)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def stop_operator(op: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL when it has not exited 30 s later (a bench must not hang or lose its
    figures on a slow shutdown)."""
    op.terminate()
    try:
        op.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"operator {op.pid} ignored SIGTERM for 30 s: killed", file=sys.stderr)
        op.kill()
        op.wait()


def ready(custom: client.CustomObjectsApi, ns: str) -> set[str]:
    """Names of the AdapterTrainings in NS whose Ready condition is True."""
    items = custom.list_namespaced_custom_object("moa.dev", "v1alpha1", ns, "adaptertrainings")["items"]
    return {
        item["metadata"]["name"]
        for item in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (item.get("status") or {}).get("conditions") or []
        )
    }


def wait_ready(
    custom: client.CustomObjectsApi, ns: str, names: list[str], started: float, timeout: float
) -> float:
    """Seconds from STARTED until every named training is Ready (exits the bench on timeout)."""
    while time.monotonic() - started < timeout:
        if set(names) <= ready(custom, ns):
            return time.monotonic() - started
        time.sleep(1)
    raise SystemExit(f"{len(set(names) - ready(custom, ns))} trainings not Ready after {timeout}s")
