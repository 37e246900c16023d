"""Prometheus metrics, kept in a registry of their own per application (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["Metrics"]

_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120)
_GEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.queue_wait = Histogram(
            "lollms_queue_wait_seconds",
            "Time requests waited for a slot",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.generation_time = Histogram(
            "lollms_generation_seconds",
            "Generation time, lease held to released",
            ["binding"],
            buckets=_GEN_BUCKETS,
            registry=r,
        )
        self.loads = Counter("lollms_model_loads", "Models loaded", registry=r)
        self.unloads = Counter("lollms_model_unloads", "Models unloaded", ["reason"], registry=r)
        self.evictions = Counter(
            "lollms_model_evictions", "Idle models evicted for room", registry=r
        )
        self.tokens = Counter(
            "lollms_tokens_generated", "Completion tokens generated", ["binding"], registry=r
        )
        self.requests = Counter(
            "lollms_requests", "Generation requests by outcome", ["outcome"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
