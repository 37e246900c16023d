"""The one scheduler of a cluster: a named Ray actor owning today's ``Scheduler``.

Why one actor: the scheduler's policy (budgets, queue order, eviction, swap delay) is a set of
synchronous decisions over shared state; one owner on one event loop keeps them exactly as
they are in a single process, with no distributed locking. Its cost is one round trip per
request (acquire, release), not per token: API workers stream from the model hosts directly.

Memory is budgeted per node and device: ``<node>/cpu`` (the node's Ray ``memory`` resource,
or ``[cluster] node_memory``) and ``<node>/gpu:0`` (the node's ``gpu_memory`` custom
resource). A model's device kind (its binding's ``memory_device``) may be placed on that
kind of device of any node; the scheduler picks the one with the most free memory, else the
one where evicting idle models frees the most (``Scheduler._place``). The chosen node is
where its host actor is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import ray

from lollms_server.bindings.base import Binding
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.manager import BindingManager
from lollms_server.cluster.channel import CallSession, serve_channel
from lollms_server.cluster.host import (
    RayHostedBinding,
    base_model,
    cluster_class,
    parse_host_name,
    replica_model,
)
from lollms_server.cluster.runtime import NodeInfo, alive_nodes
from lollms_server.config import Settings
from lollms_server.errors import LollmsError
from lollms_server.resources.memory import DeviceBudget, parse_size
from lollms_server.resources.metrics import Metrics
from lollms_server.resources.scheduler import Lease, ModelState, Scheduler

__all__ = ["ClusterScheduler", "SchedulerActor", "describe_state"]

logger = logging.getLogger(__name__)

_NODE_REFRESH = 1.0  # seconds between reads of the node list
_MAX_ABANDONED = 10_000
_ADOPT_SECONDS = 10.0  # a host that does not describe itself in time is not adopted


class ClusterScheduler(Scheduler):
    """``Scheduler`` with one budget per node and device, and placement on nodes."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        super().__init__(settings.resources, {}, metrics)
        self.cluster = settings.cluster
        self.margin = parse_size(settings.resources.safety_margin)
        self.nodes: dict[str, NodeInfo] = {}  # short id -> node, alive ones only

    def refresh_nodes(self) -> None:
        """Budgets for nodes that joined; a node that left keeps a 0-byte budget."""
        nodes = {node.short: node for node in alive_nodes(self.cluster)}
        for short, node in nodes.items():
            self._budget(f"{short}/cpu", node.system_memory, "node memory")
            if node.gpu_memory:
                self._budget(f"{short}/gpu:0", node.gpu_memory, "node gpu_memory resource")
        for short in set(self.nodes) - set(nodes):
            logger.warning("Node %s left the cluster", short)
            for name, budget in self.budgets.items():
                if name.startswith(short + "/"):
                    budget.total, budget.source = 0, "node lost"
        self.nodes = nodes

    def _budget(self, name: str, total: int, source: str) -> None:
        budget = self.budgets.get(name)
        if budget is None:
            self.budgets[name] = DeviceBudget(name, total, self.margin, source)
        else:
            budget.total, budget.source = total, source

    def placements(self, kind: str) -> list[str]:
        """``kind`` on every alive node that has it (GPU: device 0 of each node)."""
        if kind != "cpu" and kind != "gpu:0":
            return []
        return [
            f"{short}/{kind}"
            for short in self.nodes
            if f"{short}/{kind}" in self.budgets and self.budgets[f"{short}/{kind}"].total
        ]

    def _copy(self, binding: Binding, model: str) -> str:
        """With ``replicas`` > 1: the copy with a free slot and the least work; else a copy
        being loaded; else a new copy, when one fits a node without evicting; else the least
        busy copy (queued)."""
        count = binding.config.replicas
        if count < 2:
            return model
        states = [self.state(binding, replica_model(model, index)) for index in range(count)]

        def work(state: ModelState) -> int:
            return state.active + len(self._waiters_of(state))

        free = [
            s
            for s in states
            if s.status == "loaded" and s.active < s.max_concurrency and not self._waiters_of(s)
        ]
        loading = [s for s in states if s.status == "loading"]
        room = [s for s in states if s.status == "unloaded" and self._fits_now(s)]
        for group in (free, loading, room):
            if group:
                return min(group, key=work).model
        return min(states, key=work).model

    def _fits_now(self, state: ModelState) -> bool:
        return any(self.budgets[d].free >= state.need for d in self.placements(state.kind))

    def _place(self, state: ModelState) -> None:
        """Copies of one model go to different nodes while one has room without evicting (a
        node's loss then leaves the others serving); else as any model."""
        taken = {
            s.device
            for s in self._states.values()
            if s is not state
            and s.binding is state.binding
            and s.status != "unloaded"
            and base_model(s.model) == base_model(state.model)
        }
        spread = [
            d
            for d in self.placements(state.kind)
            if d not in taken and self.budgets[d].free >= state.need
        ]
        if taken and spread:
            state.device = max(spread, key=lambda d: self.budgets[d].free)
        else:
            super()._place(state)

    def adopt(
        self, binding: Binding, model: str, node: str, pinned: bool, running: int
    ) -> ModelState:
        """Count ``model`` as loaded on ``node`` (short id) with ``running`` generations in
        progress: a host that a previous scheduler started (see ``_SchedulerBody.start``)."""
        state = self.state(binding, model)
        state.device = f"{node}/{state.kind}"
        if state.device not in self.budgets:
            self._budget(state.device, 0, "no such device")
        state.need = binding.memory_used(model) or state.need
        state.status, state.pinned, state.active = "loaded", pinned, running
        state.last_used = time.monotonic()
        self.budgets[state.device].used += state.need
        return state

    def release_adopted(self, state: ModelState) -> None:
        """One of the generations an adopted host was running has ended."""
        state.active = max(0, state.active - 1)
        state.last_used = time.monotonic()
        self._pump()

    async def preload(self, binding: Binding, model: str) -> None:
        """Load and pin ``model``; the pin is kept in its host (it outlives this actor)."""
        await super().preload(binding, model)
        if isinstance(binding, RayHostedBinding):
            await binding.mark(model, True)

    async def pin_model(self, binding: Binding, model: str, pinned: bool) -> ModelState:
        """Pin or unpin ``model``; the pin is kept in its host (it outlives this actor)."""
        state = await super().pin_model(binding, model, pinned)
        if isinstance(binding, RayHostedBinding):
            await binding.mark(model, state.pinned)
        return state

    def _start_load(self, state: ModelState) -> None:
        node = self.nodes.get(state.device.partition("/")[0])
        if isinstance(state.binding, RayHostedBinding) and node is not None:
            state.binding.placement[state.model] = node.node_id
        super()._start_load(state)

    def status(self) -> dict[str, Any]:
        """The single-process status, plus the nodes and where each model runs."""
        out = super().status()
        out["nodes"] = [
            {
                "node_id": node.node_id,
                "name": short,
                "address": node.address,
                "devices": [name for name in self.budgets if name.startswith(short + "/")],
            }
            for short, node in self.nodes.items()
        ]
        for model in out["models"]:
            model["node"] = model["device"].partition("/")[0]
        return out


def _host_lost() -> dict[str, Any]:
    return {"error": {"class": "ModelHostCrashed", "message": "model host lost"}}


def describe_state(state: ModelState) -> dict[str, Any]:
    """What a worker needs to mirror a model's state."""
    return {
        "status": state.status,
        "device": state.device,
        "pinned": state.pinned,
        "need": state.need,
        "active": state.active,
        "model": state.model,  # the copy the lease is for (a replica's own name)
        "keep_alive": state.keep_alive,
    }


class _SchedulerBody:
    """The actor's body (wrapped by ``ray.remote`` in ``SchedulerActor``)."""

    def __init__(self, settings: Settings) -> None:
        from lollms_server.app import build_registry

        self.settings = settings
        self.metrics = Metrics()
        self.scheduler = ClusterScheduler(settings, self.metrics)
        self.bindings = BindingManager.from_settings(
            settings, build_registry(settings), self.scheduler.model_lost, wrap=cluster_class
        )
        self.secret = secrets.token_urlsafe(32)  # the hosts' channels (given with leases)
        for record in self.bindings.records():
            if isinstance(record.binding, RayHostedBinding):
                record.binding.batch = settings.cluster.batch_events
                record.binding.secret = self.secret
        self.leases: dict[str, tuple[Lease, str]] = {}  # ticket -> lease, worker
        self.abandoned: set[str] = set()  # tickets released before their grant
        self.granted: Counter[str] = Counter()  # leases granted per API worker
        # Generations running on adopted hosts, granted by a previous scheduler: (instance,
        # model) -> how many; their release (an unknown ticket) ends one.
        self.adopted: Counter[tuple[str, str]] = Counter()
        self._refresher: asyncio.Task[None] | None = None
        self._started: asyncio.Task[None] | None = None
        self.channel: asyncio.Server | None = None
        self.address = ""  # the channel's host:port, once started

    async def start(self) -> None:
        """Read the nodes, keep reading them, adopt the hosts a previous scheduler left
        (this actor restarted), and load the ``preload`` models (pinned). Every method
        waits for it: after a restart, Ray calls none of them first."""
        if self._started is None:
            self._started = asyncio.create_task(self._start())
        await asyncio.shield(self._started)

    async def channel_info(self) -> dict[str, Any]:
        """Where API workers ask for leases without a Ray call (see ``channel.py``); no
        address when it could not listen."""
        await self.start()
        return {"address": self.address or None, "secret": self.secret}

    def _session(self, write: Callable[[bytes], object]) -> CallSession:
        return CallSession(write, {"acquire": self.acquire}, {"release": self.release})

    async def _start(self) -> None:
        try:
            self.channel, self.address = await serve_channel(lambda: self.secret, self._session)
        except OSError as exc:  # leases go over Ray calls only
            logger.warning("The scheduler could not open its channel: %s", exc)
        self.scheduler.refresh_nodes()
        self._refresher = asyncio.create_task(self._refresh())
        await self._adopt_hosts()
        for target in self.settings.resources.preload:
            instance, _, model = target.partition("/")
            try:
                await self.scheduler.preload(self.bindings.get(instance), model)
            except Exception as exc:  # a pinned model that fails must not stop the cluster
                logger.error("Preloading '%s' failed: %s", target, exc)

    async def _adopt_hosts(self) -> None:
        """Own the model hosts running in this namespace (they are detached: a restart of
        this actor leaves them running); stop those no configured binding claims."""
        namespace = self.settings.cluster.namespace
        for entry in ray.util.list_named_actors(all_namespaces=True):
            found = parse_host_name(entry["name"]) if entry["namespace"] == namespace else None
            if found is None:
                continue
            try:
                actor = ray.get_actor(entry["name"], namespace=namespace)
                where = await asyncio.wait_for(actor.describe.remote(), _ADOPT_SECONDS)
            except Exception as exc:  # gone meanwhile, or hung: not adopted
                logger.warning("Model host %s not adopted: %s", entry["name"], exc)
                continue
            await self._adopt(found, actor, where, entry["name"])

    async def _adopt(
        self, found: tuple[str, str], actor: Any, where: dict[str, Any], name: str
    ) -> None:
        instance, model = found
        binding = self.bindings.get(instance) if instance in self.bindings.active_names() else None
        node = next(
            (s for s, n in self.scheduler.nodes.items() if n.node_id == where["node_id"]), None
        )
        owned = isinstance(binding, RayHostedBinding) and model not in binding.hosts
        if not owned or where.get("model") is None or node is None:
            logger.warning("Stopping model host %s: no configured model claims it", name)
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
            return
        assert isinstance(binding, RayHostedBinding)
        await binding.adopt(model, actor, where)
        running = int(where.get("running") or 0)
        self.scheduler.adopt(binding, model, node, bool(where.get("pinned")), running)
        self.adopted[(instance, model)] += running
        logger.info("Adopted the running host of '%s/%s' on node %s", instance, model, node)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(_NODE_REFRESH)
            try:
                self.scheduler.refresh_nodes()
                self.scheduler._pump()
                await self._settle_adopted()
            except Exception:
                logger.exception("Reading the cluster's nodes failed")

    async def _settle_adopted(self) -> None:
        """End the adopted generations their hosts no longer run (a release may never come:
        its worker died, or released it to the previous scheduler)."""
        for (instance, model), count in list(self.adopted.items()):
            if count <= 0:
                continue
            binding = self.bindings.get(instance)
            actor = binding.actor_of(model) if isinstance(binding, RayHostedBinding) else None
            state = self.scheduler.state(binding, model)
            running = 0
            if actor is not None:
                with contextlib.suppress(Exception):
                    where = await asyncio.wait_for(actor.describe.remote(), _ADOPT_SECONDS)
                    running = int(where.get("running") or 0)
            ours = sum(1 for lease, _ in self.leases.values() if lease.state is state)
            still = min(count, max(0, running - ours))
            self.adopted[(instance, model)] = still
            for _ in range(count - still):
                self.scheduler.release_adopted(state)

    async def acquire(
        self,
        instance: str,
        model: str,
        queue_timeout: float | None,
        keep_alive: float | None,
        worker: str,
        ticket: str,
    ) -> dict[str, Any]:
        """A lease on ``instance/model`` for ``worker``, known by the worker's ``ticket``
        (so that a worker whose client left can release it before knowing it was granted)."""
        await self.start()
        if ticket in self.leases:  # asked again: a worker whose channel broke retries over Ray
            return self._regrant(ticket)
        try:
            binding = self.bindings.get(instance)
            lease = await self.scheduler.acquire(
                binding, model, queue_timeout=queue_timeout, keep_alive=keep_alive
            )
        except LollmsError as exc:
            return {"error": wire.error_to_wire(exc)}
        if ticket in self.leases:  # the other ask was granted first: one lease per ticket
            lease.release()
            return self._regrant(ticket)
        reply = self._grant(lease)
        if "error" in reply or ticket in self.abandoned:  # host lost meanwhile, client left
            self.abandoned.discard(ticket)
            lease.release()
            return reply if "error" in reply else _host_lost()
        self.leases[ticket] = (lease, worker)
        self.granted[worker] += 1
        return reply

    def _regrant(self, ticket: str) -> dict[str, Any]:
        """The grant of a ticket already held (ended when its host is gone meanwhile)."""
        reply = self._grant(self.leases[ticket][0])
        if "error" in reply:
            self.leases.pop(ticket)[0].release()
        return reply

    def _grant(self, lease: Lease) -> dict[str, Any]:
        """What the worker needs to use ``lease``: its host's actor name and channel."""
        binding = lease.state.binding
        hosted = binding if isinstance(binding, RayHostedBinding) else None
        host = hosted.name_of(lease.state.model) if hosted else None  # the copy's host
        if hosted is None or host is None:
            return _host_lost()
        channel = hosted.channel_of(lease.state.model)
        return {
            "waited": lease.waited,
            "host": host,
            "channel": channel,
            "secret": self.secret if channel else "",
            **describe_state(lease.state),
        }

    async def release(self, ticket: str, instance: str = "", model: str = "") -> None:
        """End a lease; a ticket not granted yet is remembered, and released when it is. A
        ticket of a previous scheduler (this actor restarted) ends one of the generations
        its adopted host of ``instance/model`` was running."""
        await self.start()
        entry = self.leases.pop(ticket, None)
        if entry is not None:
            entry[0].release()
        elif self.adopted[(instance, model)] > 0:
            self.adopted[(instance, model)] -= 1
            binding = self.bindings.get(instance)
            self.scheduler.release_adopted(self.scheduler.state(binding, model))
        else:
            self.abandoned.add(ticket)
            if len(self.abandoned) > _MAX_ABANDONED:  # tickets refused, never granted
                self.abandoned.pop()

    async def release_worker(self, worker: str) -> int:
        """End every lease of a worker that died; how many there were."""
        await self.start()
        tickets = [ticket for ticket, (_, owner) in self.leases.items() if owner == worker]
        for ticket in tickets:
            await self.release(ticket)
        return len(tickets)

    async def status(self) -> dict[str, Any]:
        """The scheduler's status (nodes, devices, models and where they run, queue), and
        the API workers that asked for leases."""
        await self.start()
        active = Counter(worker for _, worker in self.leases.values())
        return {
            **self.scheduler.status(),
            "workers": [
                {"worker": worker, "leases_granted": count, "leases_active": active[worker]}
                for worker, count in sorted(self.granted.items())
            ],
        }

    async def admin(self, op: str, instance: str, model: str, flag: bool) -> dict[str, Any]:
        """load (``flag``: pin), pin (``flag``: pinned) or unload a model now."""
        await self.start()
        try:
            binding = self.bindings.get(instance)
            if op == "load":
                state = await self.scheduler.load_model(binding, model, pin=flag)
            elif op == "pin":
                state = await self.scheduler.pin_model(binding, model, flag)
            else:  # every copy of it (load and pin act on the first)
                refusals = [
                    await self.scheduler.unload_model(binding, replica_model(model, index))
                    for index in range(binding.config.replicas)
                ]
                state = self.scheduler.state(binding, model)
                later = [r for r in refusals[1:] if r and r != "is not loaded"]
                refusal = refusals[0] or next(iter(later), None)
                return {"refusal": refusal, **describe_state(state)}
        except LollmsError as exc:
            return {"error": wire.error_to_wire(exc)}
        return describe_state(state)

    async def shutdown(self) -> None:
        """Unload every model (hosts end) and stop reading the nodes."""
        if self._refresher is not None:
            self._refresher.cancel()
        if self.channel is not None:
            self.channel.close()
        with contextlib.suppress(Exception):
            await self.scheduler.shutdown()
        await self.bindings.close()


SchedulerActor: Any = ray.remote(_SchedulerBody)
