"""Model hosts as Ray actors, and the binding wrapper that uses them.

``ModelHostActor`` runs one binding instance for one model, like the child process of
``bindings/hosted`` (same init message, same operations, same wire format for events and
errors), on the node the cluster scheduler picked. ``RayHost`` is its handle with the
``HostProcess`` interface, so ``HostedBinding`` drives both the same way; ``RayHostedBinding``
is ``HostedBinding`` with Ray hosts.

Streams: an API worker reads a generation's events from the host's channel (``channel.py``:
a TCP connection served by ``HostSession``, as the pipe of a local model host is). When the
channel cannot be reached, the actor's ``generate`` serves them instead: a Ray streaming
generator whose items are batches of events (whatever the engine produced while the previous
batch was in flight, at most ``[cluster] batch_events``).

Death: the owner (the scheduler actor) keeps one call pending on each host
(``wait_forever``); when the actor or its node dies that call fails, the host is marked dead
and ``BindingContext.model_lost`` tells the scheduler. A stream that was running on it fails
with ``model_host_crashed`` as soon as Ray reports the actor lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.events import Event
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.hosted.binding import HostedBinding
from lollms_server.bindings.hosted.child import HostSession, build_binding, run_operation
from lollms_server.bindings.hosted.process import HostProcess
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.cluster.channel import ChannelClient, serve_channel

__all__ = [
    "ModelHostActor",
    "RayHost",
    "RayHostedBinding",
    "base_model",
    "cluster_class",
    "host_name",
    "parse_host_name",
    "ray_hosted",
    "replica_model",
]

logger = logging.getLogger(__name__)

_DEFAULT_BATCH = 32
CHANNEL_OPS = frozenset({"generate", "cancel"})  # what an API worker may ask a host directly


_serial = itertools.count(1)
_REPLICA = re.compile(r"#r[0-9]+$")

# The host a lease granted to the request running in this context (an API worker may run
# requests on several replicas of one model at once).
_LEASED: ContextVar[RayHost | None] = ContextVar("lollms_leased_host", default=None)


def replica_model(model: str, index: int) -> str:
    """The scheduler's name for copy ``index`` of ``model`` (copy 0 is the model itself)."""
    return model if index == 0 else f"{model}#r{index}"


def base_model(model: str) -> str:
    """The model a replica name stands for."""
    return _REPLICA.sub("", model)


def parse_host_name(name: str) -> tuple[str, str] | None:
    """``(instance, model)`` of a host's actor name (None: not a host's name)."""
    if not name.startswith("lollms_host:"):
        return None
    target = name[len("lollms_host:") :].rpartition("#")[0]
    instance, _, model = target.partition("/")
    return (instance, model) if instance and model else None


def host_name(instance: str, model: str) -> str:
    """A Ray actor name for a new host of ``instance/model``: numbered, since the name of a
    host lost with its node stays taken until Ray has cleaned it up."""
    return f"lollms_host:{instance}/{model}#{next(_serial)}"


class _ModelHost:
    """The actor's body (wrapped by ``ray.remote`` in ``ModelHostActor``)."""

    def __init__(self, init: dict[str, Any]) -> None:
        self.binding: Binding = build_binding(init)
        self.loaded: str | None = None  # the model, once loaded
        self.measured: int | None = None  # its memory, as the binding measured it
        self.pinned = False  # kept here, so that a restarted scheduler knows it
        self.running = 0  # generations in progress (over Ray or the channel)
        self.secret = ""  # what API workers present to use the channel
        self.address: str | None = None  # the channel's host:port, once open
        self.channel: asyncio.Server | None = None

    def describe(self) -> dict[str, Any]:
        """Where this host runs (pid, Ray node) and what a restarted scheduler needs to
        adopt it: its model, measured memory, pin and running generations."""
        context = ray.get_runtime_context()
        return {
            "pid": os.getpid(),
            "node_id": context.get_node_id(),
            "name": context.get_actor_name(),
            "model": self.loaded,
            "measured": self.measured,
            "pinned": self.pinned,
            "running": self.running,
            "channel": self.address,
        }

    async def open_channel(self, secret: str) -> str:
        """Serve generations to the API workers that present ``secret`` over a direct
        connection (``channel.py``); its address. Called again (by a restarted scheduler),
        the new secret holds for new connections."""
        self.secret = secret
        if self.address is None:
            self.channel, self.address = await serve_channel(lambda: self.secret, self._session)
        return self.address

    def _session(self, write: Callable[[bytes], object]) -> HostSession:
        return HostSession(write, self.binding, ops=CHANNEL_OPS, activity=self._activity)

    def _activity(self, delta: int) -> None:
        self.running += delta

    def mark(self, pinned: bool) -> None:
        """Remember the scheduler's pin (the scheduler may restart; this host stays)."""
        self.pinned = pinned

    async def call(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """One operation; its result or its error, as values (never a Ray task error)."""
        try:
            result = await run_operation(self.binding, op, fields)
        except Exception as exc:
            return {"error": wire.error_to_wire(exc)}
        if op == "load":
            self.loaded, self.measured = str(fields["model"]), result
        return {"result": result}

    async def generate(self, request: dict[str, Any], batch: int) -> AsyncIterator[list[Any]]:
        """The events of one generation in batches; the last item is ``{"error": ...}`` on
        failure. Cancelling the call (the client left) closes the binding's stream."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        producer = asyncio.create_task(self._produce(request, queue))
        self.running += 1
        try:
            while True:
                items = [await queue.get()]
                while len(items) < batch and not queue.empty():
                    items.append(queue.get_nowait())
                done = items[-1] is None
                out = [item for item in items if item is not None]
                if out:
                    yield out
                if done or "error" in out[-1]:
                    return
        finally:
            self.running -= 1
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer

    async def _produce(
        self, request: dict[str, Any], queue: asyncio.Queue[dict[str, Any] | None]
    ) -> None:
        stream = self.binding.generate(wire.request_from_wire(request))
        try:
            async for event in stream:
                queue.put_nowait(wire.event_to_wire(event))
            queue.put_nowait(None)
        except Exception as exc:
            queue.put_nowait({"error": wire.error_to_wire(exc)})
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    async def wait_forever(self) -> None:
        """Never returns: its failure is how the owner learns that this host died."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        """Release the binding (before the actor is killed)."""
        if self.channel is not None:
            self.channel.close()
        await self.binding.close()


ModelHostActor: Any = ray.remote(_ModelHost)


class RayHost(HostProcess):
    """A ``HostProcess`` whose process is a Ray actor (created here, or attached to)."""

    def __init__(
        self,
        label: str,
        on_death: Callable[[str], None] | None = None,
        *,
        name: str = "",
        node_id: str | None = None,
        batch: int = _DEFAULT_BATCH,
        secret: str = "",
    ) -> None:
        super().__init__(label, on_death)
        self.name = name
        self.node_id = node_id
        self.batch = batch
        self.secret = secret  # the channel's (empty: generations go over Ray)
        self.address: str | None = None  # the host's channel
        self.actor: Any = None
        self.actor_pid: int | None = None
        self.channel: ChannelClient | None = None
        self._opening = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None

    @classmethod
    def attach(
        cls,
        label: str,
        actor: Any,
        batch: int = _DEFAULT_BATCH,
        address: str | None = None,
        secret: str = "",
    ) -> RayHost:
        """A handle on a host another process started (API workers use these); with an
        ``address``, generations go over the host's channel."""
        host = cls(label, batch=batch, secret=secret)
        host.actor, host.address = actor, address
        return host

    @classmethod
    def adopt(
        cls,
        label: str,
        actor: Any,
        where: dict[str, Any],
        on_death: Callable[[str], None] | None = None,
        batch: int = _DEFAULT_BATCH,
    ) -> RayHost:
        """Own again a host a previous scheduler started (``where``: its ``describe``)."""
        host = cls(label, on_death, name=where.get("name") or "", node_id=where["node_id"])
        host.batch = batch
        host.actor, host.actor_pid = actor, where["pid"]
        host._watch = asyncio.create_task(host._watch_death())
        return host

    @property
    def pid(self) -> int | None:
        """The actor's process id (on its node)."""
        return self.actor_pid

    async def start(self, init: dict[str, Any]) -> None:
        """Create the actor on ``node_id`` (the scheduler's choice) and build the binding."""
        options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 10_000, "max_restarts": 0}
        if self.name:  # named and detached: it outlives a restart of the scheduler actor
            options.update(name=self.name, lifetime="detached")
        if self.node_id is not None:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                self.node_id, soft=False
            )
        self.actor = ModelHostActor.options(**options).remote(init)
        try:
            where = await self.actor.describe.remote()
        except RayError as exc:
            self.dead = f"the host actor could not start: {_reason(exc)}"
            raise self.crashed() from None
        self.actor_pid, self.node_id = where["pid"], where["node_id"]
        self._watch = asyncio.create_task(self._watch_death())
        await self.open_channel()

    async def open_channel(self) -> None:
        """Have the actor serve its channel (the owner's side: API workers connect)."""
        if not self.secret:
            return
        try:
            self.address = await self.actor.open_channel.remote(self.secret)
        except RayActorError as exc:
            self.dead = self.dead or _reason(exc)
            raise self.crashed() from None
        except RayError as exc:  # it could not listen: its streams go over Ray
            logger.warning("Model host %s has no channel: %s", self.label, _reason(exc))

    async def _watch_death(self) -> None:
        try:
            await self.actor.wait_forever.remote()
        except asyncio.CancelledError:
            raise
        except RayError as exc:
            self._died(_reason(exc))

    async def call(self, op: str, **fields: Any) -> Any:
        """One operation in the actor; errors re-raised as the server's own types."""
        if self.dead is not None or self.actor is None:
            raise self.crashed()
        try:
            reply = await self.actor.call.remote(op, {"op": op, **fields})
        except RayError as exc:
            self.dead = self.dead or _reason(exc)
            raise self.crashed() from None
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply["result"]

    async def stream(self, request: BindingRequest, grace: float) -> AsyncGenerator[Event, None]:
        """The events of one generation, over the host's channel (over Ray when it has none
        or cannot be reached); closing early cancels it in the actor, and kills the actor
        when the generation has not stopped ``grace`` seconds later."""
        if self.dead is not None or self.actor is None:
            raise self.crashed()
        channel = await self._channel()
        if channel is None:
            async with contextlib.aclosing(self._ray_stream(request, grace)) as events:
                async for event in events:  # closed early: the cancel is awaited here
                    yield event
            return
        try:
            async with contextlib.aclosing(channel.stream(request, grace)) as events:
                async for event in events:
                    yield event
        finally:
            if channel.dead is not None:  # the next lease gets a fresh handle
                self.dead = self.dead or channel.dead

    async def _channel(self) -> ChannelClient | None:
        """The open connection to the host's channel (None: it has none, or it cannot be
        reached from here, which is logged once per handle)."""
        if self.address is None:
            return None
        async with self._opening:
            if self.address is None:  # another stream found it unreachable meanwhile
                return None
            if self.channel is None or self.channel.dead is not None:
                channel = ChannelClient(self.label, self.address, self.secret, self._kill)
                try:
                    await channel.open()
                except (OSError, asyncio.TimeoutError) as exc:
                    logger.warning(
                        "Model host %s: its channel %s is unreachable (%s); streaming over Ray",
                        self.label,
                        self.address,
                        exc,
                    )
                    self.address = None
                    return None
                self.channel = channel
                if self._watch is None:
                    self._watch = asyncio.create_task(self._watch_death())
        return self.channel

    def _kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)

    def _died(self, reason: str) -> None:
        super()._died(reason)
        if self.channel is not None:
            self.channel.lost(reason)

    async def _ray_stream(
        self, request: BindingRequest, grace: float
    ) -> AsyncGenerator[Event, None]:
        refs = self.actor.generate.options(num_returns="streaming").remote(
            wire.request_to_wire(request), self.batch
        )
        finished = False
        try:
            async for ref in refs:
                for item in await ref:
                    if "error" in item:
                        finished = True
                        raise wire.error_from_wire(item["error"])
                    yield wire.event_from_wire(item)
            finished = True
        except RayError as exc:
            finished = True
            self.dead = self.dead or _reason(exc)
            raise self.crashed() from None
        finally:
            if not finished:
                await self._cancel_stream(refs, grace)

    async def _cancel_stream(self, refs: Any, grace: float) -> None:
        with contextlib.suppress(Exception):
            ray.cancel(refs)
        try:
            await asyncio.wait_for(_drain(refs), grace)
        except asyncio.TimeoutError:
            logger.warning(
                "Model host %s did not stop a cancelled generation in %.0f s: killing it",
                self.label,
                grace,
            )
            with contextlib.suppress(Exception):
                ray.kill(self.actor, no_restart=True)

    async def stop(self) -> None:
        """Release the binding in the actor (within the grace period), then kill the actor."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
        if self.channel is not None:
            self.channel.close()
        if self.actor is None or self.dead is not None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.actor.close.remote(), 10.0)
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)


async def _drain(refs: Any) -> None:
    with contextlib.suppress(Exception):
        async for _ in refs:
            pass


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'lost'}"


class RayHostedBinding(HostedBinding):
    """A binding whose models run in Ray actors.

    In the scheduler actor, ``load`` creates the host on the node in ``placement`` (set by
    the scheduler just before). In an API worker, a lease names the host of the model
    (``attach``) and ``generate``/``embed``/``tokenize`` go straight to it.
    """

    def __init__(self, config: BindingConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self.placement: dict[str, str] = {}  # model -> node id, chosen by the scheduler
        self.attached: dict[str, RayHost] = {}  # model -> a host started elsewhere
        self._handles: dict[str, RayHost] = {}  # actor name -> its handle here
        self.batch = _DEFAULT_BATCH
        self.secret = ""  # the hosts' channel secret (set by the scheduler actor)

    def _new_host(self, model: str) -> HostProcess:
        return RayHost(
            f"{self.instance_name}/{model}",
            self._on_death(model),
            name=host_name(self.instance_name, model),
            node_id=self.placement.get(model),
            batch=self.batch,
            secret=self.secret,
        )

    async def attach(
        self, model: str, name: str, address: str | None = None, secret: str = ""
    ) -> None:
        """Use the host actor ``name`` (from a lease; ``address`` and ``secret``: its
        channel) for ``model`` in the request running in this context (and, by default, in
        this worker). Its Ray handle is looked up once per host."""
        key = name
        host = self._handles.get(key)
        if host is None or host.dead:
            try:
                actor = await asyncio.to_thread(ray.get_actor, name)
            except ValueError:  # gone since the grant
                raise RayHost(f"{self.instance_name}/{model}").crashed() from None
            host = self._handles.get(key)  # another request may have looked it up meanwhile
        if host is None or host.dead:
            label = f"{self.instance_name}/{model}"
            host = RayHost.attach(label, actor, self.batch, address, secret)
            self._handles = {k: h for k, h in self._handles.items() if h.dead is None}
            self._handles[key] = host
        elif secret:
            host.secret = secret  # the current scheduler's (it may have restarted)
        self.attached[model] = host
        _LEASED.set(host)

    def handles(self) -> list[RayHost]:
        """The live handles this worker holds on hosts started elsewhere."""
        return [host for host in self._handles.values() if host.dead is None]

    def _host(self, model: str) -> HostProcess:
        leased = _LEASED.get()
        if leased is not None and leased.label == f"{self.instance_name}/{model}":
            return leased
        host = self.hosts.get(model) or self.attached.get(model)
        return host if host is not None else super()._host(model)

    def _engine_model(self, model: str) -> str:
        return base_model(model)

    def memory_estimate(self, model: str) -> int | None:
        """As the wrapped binding estimates the model (a replica: its model)."""
        return self.local.memory_estimate(base_model(model))

    def memory_device(self, model: str) -> str:
        """As the wrapped binding places the model (a replica: its model)."""
        return self.local.memory_device(base_model(model))

    def max_concurrency(self, model: str) -> int:
        """As the wrapped binding batches the model (a replica: its model)."""
        return self.local.max_concurrency(base_model(model))

    async def adopt(self, model: str, actor: Any, where: dict[str, Any]) -> None:
        """Take over the running host of ``model`` (after a restart of the scheduler)."""
        label = f"{self.instance_name}/{model}"
        host = RayHost.adopt(label, actor, where, self._on_death(model), self.batch)
        host.secret = self.secret
        await host.open_channel()
        info = await host.call("model_info", model=self._engine_model(model))
        self._info[model] = ModelInfo.model_validate(info)
        if isinstance(where.get("measured"), int) and where["measured"] > 0:
            self._measured[model] = where["measured"]
        self.hosts[model] = host

    async def mark(self, model: str, pinned: bool) -> None:
        """Record ``model``'s pin in its host (a restarted scheduler reads it back)."""
        host = self.hosts.get(model)
        if isinstance(host, RayHost) and host.actor is not None and host.dead is None:
            with contextlib.suppress(RayError):
                await host.actor.mark.remote(pinned)

    def node_of(self, model: str) -> str | None:
        """The Ray node running ``model`` (None when not loaded here)."""
        host = self.hosts.get(model)
        return host.node_id if isinstance(host, RayHost) else None

    def actor_of(self, model: str) -> Any:
        """The actor handle of ``model``'s host (None when not loaded here)."""
        host = self.hosts.get(model)
        return host.actor if isinstance(host, RayHost) else None

    def name_of(self, model: str) -> str | None:
        """The actor name of ``model``'s host (None when not loaded here)."""
        host = self.hosts.get(model)
        return (host.name or None) if isinstance(host, RayHost) else None

    def channel_of(self, model: str) -> str | None:
        """The channel address of ``model``'s host (None: not loaded here, or no channel)."""
        host = self.hosts.get(model)
        return host.address if isinstance(host, RayHost) else None


def cluster_class(cls: type[Binding]) -> type[Binding]:
    """How a binding runs on a cluster: in Ray model hosts when it holds models, else as it
    is in every API worker (a client of a remote service gains nothing from a Ray hop)."""
    return ray_hosted(cls) if cls.holds_models else cls


def ray_hosted(cls: type[Binding]) -> type[RayHostedBinding]:
    """The Ray-hosted variant of binding class ``cls`` (an already hosted class unwrapped)."""
    inner = getattr(cls, "inner", cls)
    return type(
        f"RayHosted{inner.__name__}",
        (RayHostedBinding,),
        {
            "inner": inner,
            "name": inner.name,
            "description": inner.description,
            "modalities": inner.modalities,
            "capabilities": inner.capabilities,
            "Config": inner.Config,
        },
    )
