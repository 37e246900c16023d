"""Prometheus metrics, kept in a registry of their own per application (no global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["Metrics", "StatusCollector"]

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


class StatusCollector:
    """Gauges read from the scheduler's status at each scrape: memory per device (per node in
    a cluster), each loaded model and where it runs, queued and running requests per model,
    and a cluster's nodes."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        memory = GaugeMetricFamily(
            "lollms_device_memory_bytes",
            "Memory budget and reserved use per device ('node/device' in a cluster)",
            labels=["device", "kind"],
        )
        for name, device in status.get("devices", {}).items():
            memory.add_metric([name, "budget"], device["budget_bytes"])
            memory.add_metric([name, "used"], device["used_bytes"])
        yield memory
        yield from _model_gauges(status.get("models", []))
        yield (
            GaugeMetricFamily(
                "lollms_queue_depth", "Requests waiting, all models", value=status["queue"]["depth"]
            )
            if "queue" in status
            else GaugeMetricFamily("lollms_queue_depth", "", value=0)
        )
        if "nodes" in status:
            yield GaugeMetricFamily(
                "lollms_cluster_nodes", "Alive nodes of the Ray cluster", value=len(status["nodes"])
            )


def _model_gauges(models: list[dict[str, Any]]) -> Iterator[Metric]:
    loaded = GaugeMetricFamily(
        "lollms_model_loaded",
        "1 for each loaded model, labelled with where it runs",
        labels=["binding", "model", "device"],
    )
    queued = GaugeMetricFamily(
        "lollms_model_queued", "Requests waiting for a model", labels=["binding", "model"]
    )
    active = GaugeMetricFamily(
        "lollms_model_active_generations", "Generations running", labels=["binding", "model"]
    )
    for model in models:
        key = [model["binding_name"], model["model_name"]]
        if model["status"] == "loaded":
            loaded.add_metric([*key, model["device"]], 1)
        queued.add_metric(key, model["queued"])
        active.add_metric(key, model["active_generations"])
    yield from (loaded, queued, active)
