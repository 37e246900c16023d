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
import uuid
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import RayError

from lollms_server.bindings.base import Binding
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.cluster.channel import ChannelClient
from lollms_server.cluster.host import RayHostedBinding, cluster_class
from lollms_server.cluster.runtime import SCHEDULER_NAME, connect
from lollms_server.config import Settings
from lollms_server.errors import ModelHostCrashed
from lollms_server.resources.metrics import Metrics
from lollms_server.resources.scheduler import Lease, ModelState, Scheduler

__all__ = ["RemoteLease", "RemoteScheduler", "cluster_parts"]

logger = logging.getLogger(__name__)

_SNAPSHOT_EVERY = 1.0  # seconds between status snapshots (for /api/ps and the like)
_CHANNEL_RETRY = 2.5  # seconds before a worker first tries a failed scheduler channel again
_CHANNEL_RETRY_MAX = 300.0


def _no_kill() -> None:
    """The scheduler's channel carries no generation to stop."""


@dataclass(eq=False)
class RemoteLease(Lease):
    """A lease held in the scheduler actor; releasing tells it (without waiting)."""

    ticket: str = ""
    copy: str = ""  # the model copy it runs on (a replica's own name)


class RemoteScheduler(Scheduler):
    """The worker-side face of the cluster's ``SchedulerActor``."""

    def __init__(self, settings: Settings, actor: Any, metrics: Metrics | None = None) -> None:
        # Budgets of this process: for bindings that run here (clients of remote services).
        super().__init__(
            settings.resources, Scheduler.from_settings(settings.resources).budgets, metrics
        )
        self.actor = actor
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        self.snapshot: dict[str, Any] = {"devices": {}, "models": [], "nodes": []}
        self._poller: asyncio.Task[None] | None = None
        self._pending: set[Any] = set()  # release calls in flight (kept referenced)
        self._mirrors: dict[tuple[str, str], ModelState] = {}  # Ray-hosted models seen
        self.channel: ChannelClient | None = None  # to the scheduler actor (leases)
        self._opening = asyncio.Lock()
        self._channel_retry = 0.0  # loop time before which a broken channel is not retried
        self._channel_wait = _CHANNEL_RETRY  # seconds to the next try after a failure

    # -- leases -----------------------------------------------------------------------------
    async def acquire(
        self,
        binding: Binding,
        model: str,
        *,
        queue_timeout: float | None = None,
        keep_alive: float | None = None,
    ) -> Lease:
        """A slot on ``model``: granted by the scheduler actor (which queues, loads, evicts)
        for a Ray-hosted binding; by this worker's own scheduler for one that runs here."""
        if not isinstance(binding, RayHostedBinding):
            return await super().acquire(
                binding, model, queue_timeout=queue_timeout, keep_alive=keep_alive
            )
        self._ensure_poller()
        ticket = uuid.uuid4().hex
        args = {
            "instance": binding.instance_name,
            "model": model,
            "queue_timeout": queue_timeout,
            "keep_alive": keep_alive,
            "worker": self.worker,
            "ticket": ticket,
        }
        try:
            reply = await self._lease(args)
        except asyncio.CancelledError:  # the client left while waiting: give the slot back
            self._send_release(ticket)
            raise
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        copy = str(reply.get("model") or model)
        try:
            await binding.attach(
                model, reply["host"], reply.get("channel"), reply.get("secret", "")
            )
        except BaseException:  # the client left, or the host is gone: give the slot back
            self._send_release(ticket, binding.instance_name, copy)
            raise
        state = self._mirror(binding, model, reply)
        state.active += 1
        return RemoteLease(self, state, reply["waited"], ticket=ticket, copy=copy)

    def _release(self, lease: Lease) -> None:
        if not isinstance(lease, RemoteLease):
            super()._release(lease)
            return
        lease.state.active = max(0, lease.state.active - 1)
        self._send_release(lease.ticket, lease.state.binding.instance_name, lease.copy)

    async def _lease(self, args: dict[str, Any]) -> dict[str, Any]:
        """The scheduler actor's answer to ``acquire``: over its channel, or over Ray when
        the channel is not reachable (or broke: the actor restarted, and Ray retries the
        call on the new one)."""
        channel = await self._channel()
        if channel is not None:
            with contextlib.suppress(ModelHostCrashed):  # the connection broke
                reply: dict[str, Any] = await channel.request("acquire", **args)
                return reply
        ref = self.actor.acquire.remote(**args)
        try:
            reply = await ref
        except asyncio.CancelledError:
            ray.cancel(ref)
            raise
        return reply

    async def _channel(self) -> ChannelClient | None:
        """The connection to the scheduler actor's channel (None: none reachable now; tried
        again later, waiting twice as long after each failure, up to ``_CHANNEL_RETRY_MAX``
        seconds)."""
        if self.channel is not None and self.channel.dead is None:
            return self.channel
        loop = asyncio.get_running_loop()
        if loop.time() < self._channel_retry:
            return None
        async with self._opening:
            if self.channel is not None and self.channel.dead is None:
                return self.channel
            try:
                info = await self.actor.channel_info.remote()
                if not info["address"]:
                    raise ConnectionRefusedError("the scheduler has no channel")
                channel = ChannelClient("scheduler", info["address"], info["secret"], _no_kill)
                await channel.open()
            except (RayError, OSError, asyncio.TimeoutError) as exc:
                self._channel_wait = min(self._channel_wait * 2, _CHANNEL_RETRY_MAX)
                self._channel_retry = loop.time() + self._channel_wait
                logger.warning("The scheduler's channel is unreachable (%s): leases over Ray", exc)
                return None
            self.channel, self._channel_wait = channel, _CHANNEL_RETRY
        return self.channel

    def _send_release(self, ticket: str, instance: str = "", model: str = "") -> None:
        if self.channel is not None and self.channel.dead is None:
            self.channel.cast("release", ticket=ticket, instance=instance, model=model)
            return
        ref = self.actor.release.remote(ticket, instance, model)
        self._pending.add(ref)  # fire and forget, but referenced until done
        ref.future().add_done_callback(lambda _: self._pending.discard(ref))

    def _mirror(self, binding: Binding, model: str, reply: dict[str, Any]) -> ModelState:
        state = self.state(binding, model)
        state.status, state.device = reply["status"], reply["device"]
        state.pinned, state.need = reply["pinned"], reply["need"]
        state.keep_alive = reply["keep_alive"]
        return state

    # -- administration ---------------------------------------------------------------------
    def state(self, binding: Binding, model: str) -> ModelState:
        """A Ray-hosted model's mirror (kept apart: the actor runs its state machine), or
        the state of a model of a binding that runs here."""
        if not isinstance(binding, RayHostedBinding):
            return super().state(binding, model)
        key = (binding.instance_name, model)
        mirror = self._mirrors.get(key)
        if mirror is None:
            mirror = ModelState(
                binding=binding,
                model=model,
                device="cluster",
                need=0,
                max_concurrency=max(1, binding.max_concurrency(model)),
            )
            self._mirrors[key] = mirror
        return mirror

    async def _admin(self, op: str, binding: Binding, model: str, flag: bool) -> dict[str, Any]:
        reply: dict[str, Any] = await self.actor.admin.remote(
            op, binding.instance_name, model, flag
        )
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        self._mirror(binding, model, reply)
        return reply

    async def preload(self, binding: Binding, model: str) -> None:
        if not isinstance(binding, RayHostedBinding):
            return await super().preload(binding, model)
        await self._admin("load", binding, model, True)

    async def load_model(self, binding: Binding, model: str, *, pin: bool = False) -> ModelState:
        if not isinstance(binding, RayHostedBinding):
            return await super().load_model(binding, model, pin=pin)
        await self._admin("load", binding, model, pin)
        return self.state(binding, model)

    async def pin_model(self, binding: Binding, model: str, pinned: bool) -> ModelState:
        if not isinstance(binding, RayHostedBinding):
            return await super().pin_model(binding, model, pinned)
        await self._admin("pin", binding, model, pinned)
        return self.state(binding, model)

    async def unload_model(self, binding: Binding, model: str) -> str | None:
        if not isinstance(binding, RayHostedBinding):
            return await super().unload_model(binding, model)
        refusal: str | None = (await self._admin("unload", binding, model, False))["refusal"]
        return refusal

    # -- status -----------------------------------------------------------------------------
    async def refresh(self) -> None:
        """A fresh snapshot of the cluster's status from the scheduler actor."""
        self.snapshot = await self.actor.status.remote()

    def status(self) -> dict[str, Any]:
        """The last snapshot (at most about a second old), plus the models of the bindings
        that run in this worker (as this worker sees them)."""
        self._ensure_poller()
        local = super().status()
        here = [m for m in local["models"] if m["binding_name"] not in self._hosted_names()]
        return {
            **self.snapshot,
            "models": [*self.snapshot.get("models", []), *here],
            "worker": {
                "devices": local["devices"],
                "queue": local["queue"],
                "channels": self._channels(),
            },
        }

    def _channels(self) -> dict[str, Any]:
        """How this worker reaches the cluster: leases over the scheduler's channel
        ("direct") or Ray, and how many model hosts it streams from each way."""
        hosts = [
            host
            for binding in {state.binding for state in self._mirrors.values()}
            if isinstance(binding, RayHostedBinding)
            for host in binding.handles()
        ]
        direct = self.channel is not None and self.channel.dead is None
        return {
            "scheduler": "direct" if direct else "ray",
            "hosts_direct": sum(1 for h in hosts if h.channel is not None and h.address),
            "hosts_ray": sum(1 for h in hosts if not h.address),
        }

    def _hosted_names(self) -> set[str]:
        return {instance for instance, _ in self._mirrors}

    def loaded(self) -> list[ModelState]:
        """Models loaded here, and mirrors of those the last snapshot shows loaded."""
        self._ensure_poller()
        shown = {
            (m["binding_name"], m["model_name"])
            for m in self.snapshot.get("models", [])
            if m["status"] == "loaded"
        }
        return super().loaded() + [m for key, m in self._mirrors.items() if key in shown]

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                await self.refresh()
            await asyncio.sleep(_SNAPSHOT_EVERY)

    def model_lost(self, instance: str, model: str, reason: str) -> None:
        """The actor hears of lost hosts itself; nothing to do here."""

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stop polling and shut the local part down; the cluster's models stay."""
        if self._poller is not None:
            self._poller.cancel()
        if self.channel is not None:
            self.channel.close()
        await super().shutdown(grace)


def cluster_parts(
    settings: Settings, registry: BindingRegistry, metrics: Metrics
) -> tuple[RemoteScheduler, BindingManager]:
    """An API worker's scheduler and bindings: the cluster's scheduler actor, and every
    binding wrapped so that its models run in (and stream from) Ray hosts."""
    connect(settings.cluster)
    actor = ray.get_actor(SCHEDULER_NAME, namespace=settings.cluster.namespace)
    bindings = BindingManager.from_settings(settings, registry, wrap=cluster_class)
    for record in bindings.records():
        if isinstance(record.binding, RayHostedBinding):
            record.binding.batch = settings.cluster.batch_events
    return RemoteScheduler(settings, actor, metrics), bindings
