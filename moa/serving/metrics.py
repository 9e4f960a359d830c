"""Prometheus metrics of `moa serve` (its own registry, so tests can run several servers)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SWAP = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "moa_serve_requests",
            "Chat completion requests by adapter, canary variant, route reason and HTTP status.",
            ["adapter", "variant", "route", "status"],
            registry=r,
        )
        self.first_token = Histogram(
            "moa_serve_time_to_first_token_seconds",
            "Time to the first generated text.",
            ["adapter", "variant"],
            buckets=LATENCY,
            registry=r,
        )
        self.latency = Histogram(
            "moa_serve_request_seconds",
            "Whole request time.",
            ["adapter", "variant"],
            buckets=LATENCY,
            registry=r,
        )
        self.tokens = Counter(
            "moa_serve_tokens",
            "Tokens by adapter and kind (prompt | completion).",
            ["adapter", "kind"],
            registry=r,
        )
        self.confidence = Histogram(
            "moa_serve_detection_confidence",
            "Confidence of moa-auto's language detection.",
            ["language"],
            buckets=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0),
            registry=r,
        )
        self.loaded = Gauge("moa_serve_adapters_loaded", "Adapters loaded and routable.", registry=r)
        self.swap = Histogram(
            "moa_serve_adapter_swap_seconds",
            "Time to switch the active adapter (set_adapter).",
            buckets=SWAP,
            registry=r,
        )
        self.batch = Histogram(
            "moa_serve_batch_size",
            "Requests generated together in one micro-batch.",
            ["adapter"],
            buckets=(1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.refused = Gauge(
            "moa_serve_adapters_refused", "Registry adapters that failed the load checks.", registry=r
        )
