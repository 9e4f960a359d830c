"""Operator scale benchmark on the local control plane: 1, 20 and 200 AdapterTrainings in one run.

Each size runs in its own namespace with a fresh operator process (so its peak RSS is its own);
the one-training size is the baseline the others are compared with. Per size it prints:
- hand-off latency p50/p95: from a stage's last pod finishing (as a watch saw it) to the next
  stage's first pod appearing: what a user sees, including the Job controller's work between
  a Job's pod and the Job (pod finished -> Job Complete, Job created -> its pod created);
- workload hand-off p50/p95: from a stage's last pod finishing to the next stage's workload (a
  Job, or a bare stage pod) appearing: the operator's share (its watch, queue, reconcile and
  creates; a Job stage is done for the operator when its pod has succeeded with its result);
- Job -> pod p50/p95: from a Job appearing to its pod appearing, the Job controller's share that
  is left in the pod hand-off;
- time until every training is Ready;
- the operator's peak RSS (VmHWM of its process);
- Kubernetes API requests per training: every request the operator made (reconciles, relists,
  events), from its Prometheus endpoint, divided by the trainings;
- API requests per idle reconcile: the `moa_reconcile_api_requests{reconcile="idle"}` histogram
  while the finished trainings sit through a few resyncs (no launch, no status write);
- the machine's load average (1, 5, 15 min) when the size ended: the operator shares its
  cores with the whole control plane and whatever else runs.
KWOK pods "run" for --duration; GPU requests are off (gpus: 0) so that GPU capacity, not the
operator, does not dominate. The bench stops a cluster it started (--keep leaves it up).
Usage: .venv/bin/python bench/operator_scale.py [--trainings 1,20,200] [--keep]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from operator_bench import (
    bench_cluster,
    drop_namespace,
    start_operator,
    stop_operator,
    training,
    training_namespace,
    wait_ready,
)

from moa.api.stages import STAGE_NAMES
from moa.dev.cluster import Cluster

Key = tuple[str, str, str]  # (training, stage, shard)


class StageWatch(threading.Thread):
    """Records when each stage's object of one kind (pods or Jobs) was first seen, and first seen
    finished."""

    def __init__(
        self, list_fn: Callable[..., Any], namespace: str, done: Callable[[dict[str, Any]], bool]
    ) -> None:
        super().__init__(daemon=True)
        self.list_fn, self.namespace, self.done = list_fn, namespace, done
        self.added: dict[Key, float] = {}
        self.finished: dict[Key, float] = {}
        self.stop = False

    def run(self) -> None:
        # Raw JSON events (no client models: deserializing thousands of pods into them made this
        # watch fall minutes behind at 200 trainings, and its timestamps with it), resumed from
        # the last resourceVersion (a fresh list every 30 s would replay every object again).
        w, version = watch.Watch(), None
        while not self.stop:
            resume = {"resource_version": version} if version else {}
            try:
                for ev in w.stream(
                    self.list_fn, self.namespace, timeout_seconds=30, deserialize=False, **resume
                ):
                    now = time.monotonic()
                    obj = ev["object"]
                    version = obj["metadata"].get("resourceVersion") or version
                    labels = obj["metadata"].get("labels") or {}
                    if "moa.dev/training" not in labels:
                        continue
                    key = (
                        labels["moa.dev/training"],
                        labels["moa.dev/stage"],
                        labels.get("moa.dev/shard") or "",
                    )
                    self.added.setdefault(key, now)
                    if self.done(obj.get("status") or {}):
                        self.finished.setdefault(key, now)
                    if self.stop:
                        break
            except (KeyError, client.ApiException):  # 410 Gone: the version expired; list afresh
                version = None


def pod_done(status: dict[str, Any]) -> bool:
    return status.get("phase") in ("Succeeded", "Failed")


def job_done(status: dict[str, Any]) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def handoffs(ends: dict[Key, float], starts: dict[Key, float], trainings: list[str]) -> list[float]:
    """Seconds from the last object of stage i finishing to the first of stage i+1 appearing."""
    out = []
    for t in trainings:
        for prev, nxt in itertools.pairwise(STAGE_NAMES):
            last = [v for (tt, s, _), v in ends.items() if tt == t and s == prev]
            first = [v for (tt, s, _), v in starts.items() if tt == t and s == nxt]
            if last and first:
                out.append(max(0.0, min(first) - max(last)))
    return out


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of NAME's samples that carry LABELS, from the operator's Prometheus endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total = 0.0
    for m in re.finditer(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", text, re.MULTILINE):
        if m[1] == name and all(f'{k}="{v}"' in (m[2] or "") for k, v in labels.items()):
            total += float(m[3])
    return total


def idle(port: int, part: str) -> float:
    return metric(port, f"moa_reconcile_api_requests_{part}", reconcile="idle")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100)[int(q) - 1]
        if len(values) > 1
        else (values[0] if values else float("nan"))
    )


def measure(args: argparse.Namespace, cluster: Cluster, api: client.ApiClient, size: int) -> dict[str, Any]:
    """One size: a namespace, a fresh operator, SIZE trainings to Ready, then an idle window."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"bench-{size}-{int(time.time())}"
    training_namespace(core, ns)
    log = Path(f"/tmp/{ns}-operator.log")
    op = start_operator(cluster.kubeconfig, ns, args.metrics_port, args.resync, log)
    pods = StageWatch(core.list_namespaced_pod, ns, pod_done)
    jobs = StageWatch(client.BatchV1Api(api).list_namespaced_job, ns, job_done)
    pods.start()
    jobs.start()
    names = [f"t-{i:03d}" for i in range(size)]
    try:
        time.sleep(3)  # the operator's first relist and watches
        started = time.monotonic()
        for n in names:
            custom.create_namespaced_custom_object(
                "moa.dev", "v1alpha1", ns, "adaptertrainings", training(n, args.duration)
            )
        to_ready = wait_ready(custom, ns, names, started, args.timeout)
        requests = metric(args.metrics_port, "moa_api_requests")
        idle_before = (idle(args.metrics_port, "sum"), idle(args.metrics_port, "count"))
        time.sleep(args.resync * 2.5)  # finished trainings sit through two resyncs
        idle_requests = idle(args.metrics_port, "sum") - idle_before[0]
        idle_reconciles = idle(args.metrics_port, "count") - idle_before[1]
        rss = peak_rss_mb(op.pid)
        load = [round(x, 1) for x in os.getloadavg()]
    finally:
        pods.stop = jobs.stop = True
        stop_operator(op)
        drop_namespace(core, ns)
    handoff = handoffs(pods.finished, pods.added, names)
    # A Job stage's workload is its Job (the same key as its pod: the Job's entry replaces it).
    workload = handoffs(pods.finished, {**pods.added, **jobs.added}, names)
    job_to_pod = [pods.added[k] - t for k, t in jobs.added.items() if k in pods.added]
    return {
        "trainings": size,
        "seconds_to_all_ready": round(to_ready, 1),
        "handoff_p50_s": round(pct(handoff, 50), 3),
        "handoff_p95_s": round(pct(handoff, 95), 3),
        "workload_handoff_p50_s": round(pct(workload, 50), 3),
        "workload_handoff_p95_s": round(pct(workload, 95), 3),
        "job_to_pod_p50_s": round(pct(job_to_pod, 50), 3),
        "job_to_pod_p95_s": round(pct(job_to_pod, 95), 3),
        "operator_peak_rss_mb": round(rss, 1),
        "api_requests_per_training": round(requests / size, 1),
        "idle_reconciles": int(idle_reconciles),
        "api_requests_per_idle_reconcile": round(idle_requests / idle_reconciles, 2)
        if idle_reconciles
        else None,
        "load_avg_1_5_15": load,
        "operator_log": str(log),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--trainings", default="1,20,200", help="Sizes, comma-separated; the first is the baseline."
    )
    ap.add_argument("--duration", default="500ms", help="How long each fake stage pod runs.")
    ap.add_argument("--cluster", default="bench", help="Local cluster name (started if needed).")
    ap.add_argument("--keep", action="store_true", help="Leave a cluster this bench started running.")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--resync", type=float, default=5, help="The operator's resync period (seconds).")
    ap.add_argument("--metrics-port", type=int, default=19090)
    args = ap.parse_args()
    sizes = [int(n) for n in args.trainings.split(",")]

    rows = []
    with bench_cluster(args.cluster, args.keep) as (cluster, api):
        for size in sizes:
            rows.append(measure(args, cluster, api, size))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    cols = ["trainings", "seconds_to_all_ready", "handoff_p50_s", "handoff_p95_s", "workload_handoff_p50_s",
            "workload_handoff_p95_s", "job_to_pod_p50_s", "job_to_pod_p95_s", "operator_peak_rss_mb",
            "api_requests_per_training", "api_requests_per_idle_reconcile", "load_avg_1_5_15"]  # fmt: skip
    print("| " + " | ".join(cols) + " | handoff p95 / baseline p50 |")
    print("|" + "---|" * (len(cols) + 1))
    for row in rows:
        ratio = row["handoff_p95_s"] / max(base["handoff_p50_s"], 1e-3)
        print("| " + " | ".join(str(row[c]) for c in cols) + f" | {ratio:.2f} |")


if __name__ == "__main__":
    main()
