"""Operator scale benchmark on the local control plane: N AdapterTrainings at once.

Measures, against a baseline of ONE training measured in the same run:
- time until every training is Ready;
- the operator's peak RSS (VmHWM of its process);
- Kubernetes API requests the reconciler made, per training (from its Prometheus endpoint);
- hand-off latency: from a stage's pod finishing (as seen by a watch) to the next stage's
  workload existing, p50/p95.
KWOK pods "run" for --duration; GPU requests are off (gpus: 0) so that GPU capacity, not the
operator, does not dominate. Usage: .venv/bin/python bench/operator_scale.py [--trainings 200]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch

from moa.api.stages import STAGE_NAMES
from moa.dev import fake_pods
from moa.dev.cluster import Cluster
from moa.dev.k8s_build import ensure_binaries
from moa.dev.kubectl import apply_crds

REPO = Path(__file__).resolve().parents[1]


class PodWatch(threading.Thread):
    """Records when each stage pod was first seen and when it was first seen finished."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        super().__init__(daemon=True)
        self.core, self.namespace = core, namespace
        self.added: dict[tuple[str, str, str], float] = {}  # (training, stage, shard) -> time
        self.finished: dict[tuple[str, str, str], float] = {}
        self.stop = False

    def run(self) -> None:
        w = watch.Watch()
        while not self.stop:
            for ev in w.stream(self.core.list_namespaced_pod, self.namespace, timeout_seconds=30):
                now = time.monotonic()
                pod = ev["object"]
                labels = pod.metadata.labels or {}
                if "moa.dev/training" not in labels:
                    continue
                key = (labels["moa.dev/training"], labels["moa.dev/stage"], labels.get("moa.dev/shard") or "")
                self.added.setdefault(key, now)
                if pod.status.phase in ("Succeeded", "Failed"):
                    self.finished.setdefault(key, now)
                if self.stop:
                    break

    def handoffs(self, trainings: list[str]) -> list[float]:
        """Seconds from the last pod of stage i finishing to the first pod of stage i+1 appearing."""
        out = []
        for t in trainings:
            for prev, nxt in itertools.pairwise(STAGE_NAMES):
                ends = [v for (tt, s, _), v in self.finished.items() if tt == t and s == prev]
                starts = [v for (tt, s, _), v in self.added.items() if tt == t and s == nxt]
                if ends and starts:
                    out.append(max(0.0, min(starts) - max(ends)))
        return out


def training(name: str, duration: str) -> dict[str, Any]:
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
                "podAnnotations": {"all": fake_pods.annotations(duration=duration)},
            },
        },
    }


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_phase(
    custom: client.CustomObjectsApi, ns: str, names: list[str], duration: str, timeout: float
) -> float:
    started = time.monotonic()
    for n in names:
        custom.create_namespaced_custom_object(
            "moa.dev", "v1alpha1", ns, "adaptertrainings", training(n, duration)
        )
    pending = set(names)
    while pending and time.monotonic() - started < timeout:
        items = custom.list_namespaced_custom_object("moa.dev", "v1alpha1", ns, "adaptertrainings")["items"]
        for item in items:
            conds = (item.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                pending.discard(item["metadata"]["name"])
        time.sleep(1)
    if pending:
        raise SystemExit(f"{len(pending)} trainings not Ready after {timeout}s")
    return time.monotonic() - started


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1]
        if len(values) > 1
        else (values[0] if values else float("nan"))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trainings", type=int, default=200)
    ap.add_argument("--duration", default="500ms", help="How long each fake stage pod runs.")
    ap.add_argument("--cluster", default="bench", help="Local cluster name (started if needed).")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--metrics-port", type=int, default=19090)
    args = ap.parse_args()

    cluster = Cluster(args.cluster)
    cluster.up()
    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    apply_crds(kubectl, cluster.kubeconfig, sorted((REPO / "manifests" / "crds").glob("moa.dev_*.yaml")))
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"bench-{int(time.time())}"
    core.create_namespace(
        {"metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    pv = {
        "metadata": {"name": f"{ns}-artifacts"},
        "spec": {
            "capacity": {"storage": "1Ti"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "manual",
            "hostPath": {"path": f"/tmp/{ns}"},
            "claimRef": {"namespace": ns, "name": "artifacts"},
        },
    }
    core.create_persistent_volume(pv)
    pvc_spec = {
        "accessModes": ["ReadWriteMany"],
        "storageClassName": "manual",
        "resources": {"requests": {"storage": "1Ti"}},
    }
    core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "artifacts"}, "spec": pvc_spec})

    log = Path(f"/tmp/{ns}-operator.log")
    op = subprocess.Popen(
        [sys.executable, "-m", "moa.cli", "operator", "run", "--kubeconfig", str(cluster.kubeconfig), "--namespace", ns,
         "--liveness-port", "0", "--metrics-port", str(args.metrics_port), "--resync", "30"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    watcher = PodWatch(core, ns)
    watcher.start()
    try:
        time.sleep(3)
        base_time = run_phase(custom, ns, ["baseline-0"], args.duration, args.timeout)
        base_requests = metric(args.metrics_port, "moa_api_requests")
        base_handoff = watcher.handoffs(["baseline-0"])
        names = [f"t-{i:03d}" for i in range(args.trainings)]
        scale_time = run_phase(custom, ns, names, args.duration, args.timeout)
        requests = metric(args.metrics_port, "moa_api_requests") - base_requests
        handoff = watcher.handoffs(names)
        rss = peak_rss_mb(op.pid)
    finally:
        watcher.stop = True
        op.terminate()
        op.wait(timeout=30)
    stages = len(STAGE_NAMES)
    report = {
        "trainings": args.trainings,
        "stages_per_training": stages,
        "baseline_seconds_to_ready": round(base_time, 1),
        "seconds_to_all_ready": round(scale_time, 1),
        "ratio_time_vs_one_training": round(scale_time / base_time, 2),
        "operator_peak_rss_mb": round(rss, 1),
        "api_requests_per_training": round(requests / args.trainings, 1),
        "api_requests_baseline_training": round(base_requests, 1),
        "handoff_p50_s": round(pct(handoff, 50), 3),
        "handoff_p95_s": round(pct(handoff, 95), 3),
        "baseline_handoff_p50_s": round(pct(base_handoff, 50), 3),
        "ratio_handoff_p95_vs_baseline_p50": round(pct(handoff, 95) / max(pct(base_handoff, 50), 1e-3), 2),
    }
    for key, value in report.items():
        print(f"{key:40s} {value}")
    print(json.dumps(report))
    core.delete_namespace(ns)
    core.delete_persistent_volume(f"{ns}-artifacts")
    print(yaml.safe_dump({"operator_log": str(log)}), end="")


if __name__ == "__main__":
    main()
