"""Loading models on demand, once.

This is the seed of the resource manager: it guarantees that concurrent first requests for
the same model wait for a single load, and unloads everything at shutdown. Memory budgets,
queueing and eviction build on it (see the resource-manager issue).
"""

from __future__ import annotations

import asyncio
import logging
import time

from lollms_server.bindings.base import Binding

__all__ = ["ModelManager"]

logger = logging.getLogger(__name__)


class ModelManager:
    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], tuple[Binding, float]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def is_loaded(self, instance: str, model: str) -> bool:
        return (instance, model) in self._loaded

    def loaded(self) -> list[tuple[str, str]]:
        return list(self._loaded)

    async def ensure_loaded(self, binding: Binding, model: str) -> None:
        key = (binding.instance_name, model)
        if key in self._loaded:  # fast path: no lock once loaded
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._loaded:
                return
            started = time.perf_counter()
            await binding.load(model)
            self._loaded[key] = (binding, time.monotonic())
            logger.info("Loaded model '%s' on '%s' in %.2f s", model, key[0],
                        time.perf_counter() - started)

    async def unload_all(self) -> None:
        for (instance, model), (binding, _) in list(self._loaded.items()):
            try:
                await binding.unload(model)
            except Exception:
                logger.exception("Unloading '%s' from '%s' failed", model, instance)
            self._loaded.pop((instance, model), None)
