"""Prometheus metrics and structured (JSON) logs with the resource name on every line."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable

from prometheus_client import Counter as PCounter
from prometheus_client import Gauge, Histogram

from moa.pipeline.planner import Launch

RECONCILES = PCounter("moa_reconciles", "Reconciles of AdapterTrainings", ["result"])
ERRORS = PCounter("moa_reconcile_errors", "Reconciles that raised", ["kind"])
LATENCY = Histogram(
    "moa_reconcile_seconds", "Reconcile latency", buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
)
STAGES = Gauge("moa_stages", "Stages of all AdapterTrainings by state", ["state"])
WORKLOADS = PCounter("moa_workloads_created", "Workloads created", ["stage"])
API_REQUESTS = Gauge("moa_api_requests", "Kubernetes API requests made by the operator", ["method"])
RECONCILE_REQUESTS = Histogram(
    "moa_reconcile_api_requests",
    "Kubernetes API requests of one reconcile; idle: it launched nothing and wrote no status",
    ["reconcile"],
    buckets=(0, 1, 2, 4, 8, 16, 32),
)

_stage_states: dict[str, Counter[str]] = {}
_stage_totals: Counter[str] = Counter()
_stages_lock = threading.Lock()  # reconciles of different trainings record from their own threads


def count_workloads(created: Iterable[Launch]) -> None:
    """One count per created workload, labelled by the stage it runs (never parsed from its name)."""
    for launch in created:
        WORKLOADS.labels(launch.stage).inc()


def record_stages(resource: str, states: list[str]) -> None:
    """Keep one gauge of stage states across all trainings (each training's latest view).

    The totals move by this training's difference: summing every training's view on each
    reconcile would make a reconcile's cost grow with the number of trainings."""
    _replace(resource, Counter(states))


def forget(resource: str) -> None:
    _replace(resource, None)


def _replace(resource: str, counts: Counter[str] | None) -> None:
    with _stages_lock:
        old = _stage_states.pop(resource, Counter())
        if counts is not None:
            _stage_states[resource] = counts
        if old == counts:
            return
        _stage_totals.subtract(old)
        _stage_totals.update(counts or Counter())
        for state in ("Pending", "Running", "Succeeded", "Failed"):
            STAGES.labels(state).set(_stage_totals.get(state, 0))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "resource": getattr(record, "resource", None),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in line.items() if v is not None})


def setup_logging(level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
