"""What an API worker uses in place of a local scheduler: ``RemoteScheduler``.

Every decision is the scheduler actor's; the worker keeps a mirror of the states it has seen
(for the routes that describe models) and a snapshot of the whole status, refreshed in the
background, for the routes that list loaded models. A lease granted by the actor names the
model's host actor; the worker's ``RayHostedBinding`` streams from it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.cluster.host import RayHostedBinding, ray_hosted
from lollms_server.cluster.runtime import SCHEDULER_NAME, connect
from lollms_server.config import Settings
from lollms_server.resources.metrics import Metrics
from lollms_server.resources.scheduler import Lease, ModelState, Scheduler

__all__ = ["RemoteLease", "RemoteScheduler", "cluster_parts"]

logger = logging.getLogger(__name__)

_SNAPSHOT_EVERY = 1.0  # seconds between status snapshots (for /api/ps and the like)


@dataclass(eq=False)
class RemoteLease(Lease):
    """A lease held in the scheduler actor; releasing tells it (without waiting)."""

    lease_id: int = 0


class RemoteScheduler(Scheduler):
    """The worker-side face of the cluster's ``SchedulerActor``."""

    def __init__(self, settings: Settings, actor: Any, metrics: Metrics | None = None) -> None:
        super().__init__(settings.resources, {}, metrics)
        self.actor = actor
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.snapshot: dict[str, Any] = {"devices": {}, "models": [], "nodes": []}
        self._poller: asyncio.Task[None] | None = None
        self._pending: set[Any] = set()  # release calls in flight (kept referenced)

    # -- leases -----------------------------------------------------------------------------
    async def acquire(
        self,
        binding: Binding,
        model: str,
        *,
        queue_timeout: float | None = None,
        keep_alive: float | None = None,
    ) -> Lease:
        """A slot on ``model``, granted by the scheduler actor (which queues, loads, evicts)."""
        self._ensure_poller()
        reply = await self.actor.acquire.remote(
            binding.instance_name, model, queue_timeout, keep_alive, self.worker
        )
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        if isinstance(binding, RayHostedBinding):
            binding.attach(model, reply["host"])
        state = self._mirror(binding, model, reply)
        state.active += 1
        return RemoteLease(self, state, reply["waited"], lease_id=reply["lease"])

    def _release(self, lease: Lease) -> None:
        lease.state.active = max(0, lease.state.active - 1)
        if isinstance(lease, RemoteLease):
            ref = self.actor.release.remote(lease.lease_id)
            self._pending.add(ref)
            ref.future().add_done_callback(lambda _: self._pending.discard(ref))

    def _mirror(self, binding: Binding, model: str, reply: dict[str, Any]) -> ModelState:
        state = self.state(binding, model)
        state.status, state.device = reply["status"], reply["device"]
        state.pinned, state.need = reply["pinned"], reply["need"]
        state.keep_alive = reply["keep_alive"]
        return state

    # -- administration ---------------------------------------------------------------------
    async def _admin(self, op: str, binding: Binding, model: str, flag: bool) -> dict[str, Any]:
        reply: dict[str, Any] = await self.actor.admin.remote(
            op, binding.instance_name, model, flag
        )
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        self._mirror(binding, model, reply)
        return reply

    async def preload(self, binding: Binding, model: str) -> None:
        await self._admin("load", binding, model, True)

    async def load_model(self, binding: Binding, model: str, *, pin: bool = False) -> ModelState:
        await self._admin("load", binding, model, pin)
        return self.state(binding, model)

    async def pin_model(self, binding: Binding, model: str, pinned: bool) -> ModelState:
        await self._admin("pin", binding, model, pinned)
        return self.state(binding, model)

    async def unload_model(self, binding: Binding, model: str) -> str | None:
        refusal: str | None = (await self._admin("unload", binding, model, False))["refusal"]
        return refusal

    # -- status -----------------------------------------------------------------------------
    async def current_status(self) -> dict[str, Any]:
        """The cluster's status, fresh from the scheduler actor."""
        self.snapshot = await self.actor.status.remote()
        return self.snapshot

    def status(self) -> dict[str, Any]:
        """The last snapshot (at most about a second old)."""
        self._ensure_poller()
        return self.snapshot

    def loaded(self) -> list[ModelState]:
        """Mirrors of the models the last snapshot shows loaded (on this worker's bindings)."""
        self._ensure_poller()
        return [
            state
            for state in self._states.values()
            if any(
                m["binding_name"] == state.binding.instance_name
                and m["model_name"] == state.model
                and m["status"] == "loaded"
                for m in self.snapshot["models"]
            )
        ]

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.current_status()
            await asyncio.sleep(_SNAPSHOT_EVERY)

    def model_lost(self, instance: str, model: str, reason: str) -> None:
        """The actor hears of lost hosts itself; nothing to do here."""

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop polling; models belong to the cluster and stay."""
        if self._poller is not None:
            self._poller.cancel()


def cluster_parts(
    settings: Settings, registry: BindingRegistry, metrics: Metrics
) -> tuple[RemoteScheduler, BindingManager]:
    """An API worker's scheduler and bindings: the cluster's scheduler actor, and every
    binding wrapped so that its models run in (and stream from) Ray hosts."""
    import ray

    connect(settings.cluster)
    actor = ray.get_actor(SCHEDULER_NAME, namespace=settings.cluster.namespace)
    bindings = BindingManager.from_settings(settings, registry, wrap=ray_hosted)
    for record in bindings.records():
        if isinstance(record.binding, RayHostedBinding):
            record.binding.batch = settings.cluster.batch_events
    return RemoteScheduler(settings, actor, metrics), bindings
