"""Prometheus metrics, one registry per app (so several apps in one process, as in
tests, never share counters)."""

from __future__ import annotations

import gc

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
)
from prometheus_client.exposition import generate_latest

__all__ = ["HttpMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class HttpMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "wafile_http_requests",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "wafile_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template.",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        # The collector's work (collections per generation) and what `wafile serve`
        # froze out of its sight at start (cli.common.settle_heap).
        GCCollector(registry=self.registry)
        frozen = Gauge(
            "wafile_gc_frozen_objects",
            "Objects the garbage collector skips: what the process had loaded at start.",
            registry=self.registry,
        )
        frozen.set_function(gc.get_freeze_count)

    def observe(self, *, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
