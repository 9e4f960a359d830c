"""Fault campaign for the operator on the local control plane: N trainings at once (default 20),
first undisturbed (the baseline), then while the operator is SIGKILLed at random moments (default
10 times, restarted after a short pause) and kube-apiserver and etcd are each restarted once.

Checks, and prints as a table: every training reaches Ready; no duplicate workload (one workload
per training, stage, shard and attempt, and no stage needed a second attempt); no lost stage
result (every stage status carries the metrics its pod reported). Time to all Ready is compared
with the baseline measured in the same run. The bench stops a cluster it started (--keep: not).
Usage: .venv/bin/python bench/operator_faults.py [--trainings 20] [--kills 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client
from operator_bench import (
    bench_cluster,
    drop_namespace,
    ready,
    start_operator,
    stop_operator,
    training,
    training_namespace,
)

from moa.dev.cluster import Cluster

LABELS = ("moa.dev/training", "moa.dev/stage", "moa.dev/shard", "moa.dev/attempt")


def quietly(call: Any, *args: Any) -> Any:
    """The API may be down mid-fault: an error is an empty answer, the next poll retries."""
    try:
        return call(*args)
    except Exception:
        return None


def check(api: client.ApiClient, ns: str, names: list[str]) -> dict[str, Any]:
    """Duplicate workloads and lost results, from the cluster's own objects."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    objects = [
        *(p.metadata for p in core.list_namespaced_pod(ns).items if not p.metadata.owner_references
          or all(o.kind == "AdapterTraining" for o in p.metadata.owner_references)),
        *(j.metadata for j in batch.list_namespaced_job(ns).items),
    ]  # fmt: skip
    keys = Counter(tuple((m.labels or {}).get(k, "") for k in LABELS) for m in objects if m.labels)
    duplicates = sum(n - 1 for n in keys.values() if n > 1)
    retried, lost = 0, 0
    for name in names:
        obj = custom.get_namespaced_custom_object("moa.dev", "v1alpha1", ns, "adaptertrainings", name)
        for stage in (obj.get("status") or {}).get("stages") or []:
            retried += stage.get("attempts", 1) > 1
            lost += "index" not in (stage.get("metrics") or {})
    return {"workloads": len(objects), "duplicate_workloads": duplicates, "stages_retried": retried,
            "stages_without_result": lost}  # fmt: skip


def campaign(
    args: argparse.Namespace, cluster: Cluster, api: client.ApiClient, faults: bool
) -> dict[str, Any]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    ns = f"faults-{'on' if faults else 'off'}-{int(time.time())}"
    training_namespace(core, ns)
    log = Path(f"/tmp/{ns}-operator.log")
    op = start_operator(cluster.kubeconfig, ns, args.metrics_port, args.resync, log)
    names = [f"t-{i:02d}" for i in range(args.trainings)]
    rng = random.Random(args.seed)
    # Kill moments spread over the first part of the run; apiserver and etcd once each, between.
    window = args.window
    plan = sorted(
        [(rng.uniform(1, window), "operator SIGKILL") for _ in range(args.kills if faults else 0)]
        + ([(window * 0.35, "kube-apiserver restart"), (window * 0.7, "etcd restart")] if faults else [])
    )
    events: list[dict[str, Any]] = []
    try:
        time.sleep(3)
        started = time.monotonic()
        for n in names:
            custom.create_namespaced_custom_object(
                "moa.dev", "v1alpha1", ns, "adaptertrainings", training(n, args.duration)
            )
        done: set[str] = set()
        while time.monotonic() - started < args.timeout and not set(names) <= done:
            now = time.monotonic() - started
            while plan and plan[0][0] <= now:
                _, fault = plan.pop(0)
                t0 = time.monotonic()
                if fault == "operator SIGKILL":
                    op.send_signal(signal.SIGKILL)
                    op.wait()
                    time.sleep(rng.uniform(0.2, 2.0))  # a pod being rescheduled
                    op = start_operator(cluster.kubeconfig, ns, args.metrics_port, args.resync, log)
                else:
                    cluster.restart(fault.split()[0])
                events.append({"at_s": round(now, 1), "fault": fault, "down_s": round(time.monotonic() - t0, 1),
                               "ready_before": len(done)})  # fmt: skip
            done = quietly(ready, custom, ns) or done
            time.sleep(0.5)
        seconds = time.monotonic() - started
        result = {"faults": faults, "trainings": len(names), "ready": len(done & set(names)),
                  "seconds_to_all_ready": round(seconds, 1), **check(api, ns, names), "events": events}  # fmt: skip
    finally:
        stop_operator(op)
        drop_namespace(core, ns)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trainings", type=int, default=20)
    ap.add_argument("--kills", type=int, default=10, help="Operator SIGKILLs during the faulty run.")
    ap.add_argument("--window", type=float, default=60, help="Seconds over which the faults are spread.")
    ap.add_argument("--duration", default="1s", help="How long each fake stage pod runs.")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cluster", default="bench", help="Local cluster name (started if needed).")
    ap.add_argument("--keep", action="store_true", help="Leave a cluster this bench started running.")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--resync", type=float, default=10)
    ap.add_argument("--metrics-port", type=int, default=19091)
    args = ap.parse_args()

    with bench_cluster(args.cluster, args.keep) as (cluster, api):
        base = campaign(args, cluster, api, faults=False)
        print(json.dumps(base), flush=True)
        hit = campaign(args, cluster, api, faults=True)
        print(json.dumps(hit), flush=True)
    print("\n| at (s) | fault | took (s) | trainings Ready before |\n|---|---|---|---|")
    for e in hit["events"]:
        print(f"| {e['at_s']} | {e['fault']} | {e['down_s']} | {e['ready_before']}/{hit['trainings']} |")
    cols = [
        "ready",
        "seconds_to_all_ready",
        "workloads",
        "duplicate_workloads",
        "stages_retried",
        "stages_without_result",
    ]
    print("\n| run | " + " | ".join(cols) + " |")
    print("|" + "---|" * (len(cols) + 1))
    for name, row in (("baseline", base), ("faults", hit)):
        print(f"| {name} | " + " | ".join(str(row[c]) for c in cols) + " |")
    ratio = hit["seconds_to_all_ready"] / max(base["seconds_to_all_ready"], 1e-3)
    print(f"\ntime to all Ready with faults / baseline: {ratio:.2f}")
    ok = (
        hit["ready"] == hit["trainings"]
        and not hit["duplicate_workloads"]
        and not hit["stages_without_result"]
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
