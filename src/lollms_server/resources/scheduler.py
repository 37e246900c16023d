"""The scheduler: memory budgets, loaded models and the request queue, in one place.

All state lives on the event loop and is changed only by synchronous sections of this class
(no ``await`` between reading and writing it), so no lock is needed: ``_pump`` is the single
place that grants leases, starts loads and picks evictions, and it runs after every change.

Policy, in order:
* a model that can never fit its device's budget is refused at once (507);
* waiters are served in arrival order; one whose model is loaded with a free slot runs now;
* an unloaded model is loaded when its need fits the free memory, after evicting least
  recently used *idle* models (never pinned ones, never one with a running generation);
* a loaded model that still has queued requests is not evicted for another model until that
  other model's oldest request has waited ``swap_delay`` seconds; from then on the loaded
  model gets no new leases, drains, and is swapped out (bounded wait, no swap storms);
* admission: a request that must queue is refused at once (``Overloaded``) when the queue
  holds ``max_queue`` requests (a memory cap), or when its estimated wait exceeds its
  ``queue_timeout``; one that waited past the deadline gets ``QueueTimeout`` (both 503, with a
  Retry-After from the same estimate).

The estimated wait of a request for a model is the rest of the model's load (a moving average
of its load times, less the time the current load has run) plus its turn: the requests running
on the model and queued before it, beyond the model's concurrency, divided by that concurrency,
times a moving average of how long the model's leases are held. The first request in line for
a model is always admitted (nothing is gained by refusing it), and so is every request while
the model has no measured service time yet. Waits caused by swapping other models out are not
estimated: ``queue_timeout`` still bounds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.config import ResourcesSettings
from lollms_server.errors import (
    BindingUnavailable,
    InsufficientMemory,
    LollmsError,
    Overloaded,
    QueueTimeout,
)
from lollms_server.resources.memory import (
    DeviceBudget,
    detect_gpu_memory,
    detect_system_memory,
    format_bytes,
    gpu_device,
    parse_size,
)
from lollms_server.resources.metrics import Metrics

__all__ = ["Lease", "ModelState", "Scheduler"]

logger = logging.getLogger(__name__)

_SMOOTHING = 0.2  # weight of the newest sample in the moving averages of load and service time
_MAX_RETRY_AFTER = 300  # seconds: the longest Retry-After the estimate may advise


def _average(current: float | None, sample: float) -> float:
    """Exponential moving average: the sample itself when there is none yet."""
    return sample if current is None else current + _SMOOTHING * (sample - current)


@dataclass(eq=False)
class ModelState:
    binding: Binding
    model: str
    device: str  # the budget it is (or will be) loaded on: its kind, or node/kind in a cluster
    need: int
    max_concurrency: int
    status: str = "unloaded"  # unloaded | loading | loaded | unloading
    active: int = 0
    pinned: bool = False
    keep_alive: float | None = None
    last_used: float = 0.0
    expiry: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    load_seconds: float | None = None  # moving average of load times (None: never loaded)
    service_seconds: float | None = None  # moving average of how long a lease is held
    load_started: float = 0.0  # time.monotonic() when the current load started

    kind: str = ""  # the device kind the binding asks for ("cpu", "gpu:0"...)

    def __post_init__(self) -> None:
        self.kind = self.kind or self.device

    @property
    def key(self) -> str:
        return f"{self.binding.instance_name}/{self.model}"


@dataclass(eq=False)
class _Waiter:
    state: ModelState
    future: asyncio.Future[Lease]
    enqueued: float
    keep_alive: float | None


@dataclass(eq=False)
class Lease:
    """Permission to run one generation on a loaded model; release exactly once."""

    scheduler: Scheduler
    state: ModelState
    waited: float
    released: bool = field(default=False)
    granted: float = field(default_factory=time.monotonic)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.scheduler._release(self)


class Scheduler:
    def __init__(
        self,
        settings: ResourcesSettings,
        budgets: dict[str, DeviceBudget],
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.budgets = budgets
        self.metrics = metrics or Metrics()
        self._states: dict[tuple[str, str], ModelState] = {}
        self._queue: deque[_Waiter] = deque()
        self._closed = False
        self._drained: set[str] = set()  # devices where an aged waiter has priority
        self._recheck: asyncio.TimerHandle | None = None  # one pending re-check at most
        self._no_leases = asyncio.Event()  # set when shutting down and the last lease ends

    @classmethod
    def from_settings(
        cls, settings: ResourcesSettings, metrics: Metrics | None = None
    ) -> Scheduler:
        margin = parse_size(settings.safety_margin)
        budgets: dict[str, DeviceBudget] = {}
        if settings.gpu_memory == "auto":
            gpus, note = detect_gpu_memory()
            for index, (total, name) in enumerate(gpus):
                budgets[f"gpu:{index}"] = DeviceBudget(
                    f"gpu:{index}", total, margin, f"{note}: {name}"
                )
            if not gpus:
                budgets["gpu:0"] = DeviceBudget("gpu:0", 0, 0, note)
        else:
            sizes = (
                settings.gpu_memory
                if isinstance(settings.gpu_memory, list)
                else [settings.gpu_memory]
            )
            for index, size in enumerate(sizes):
                total = parse_size(size)
                budgets[f"gpu:{index}"] = DeviceBudget(
                    f"gpu:{index}", total, margin if total else 0, "configured"
                )
        if settings.system_memory == "auto":
            cpu_total, cpu_source = detect_system_memory(), "detected (system RAM)"
        else:
            cpu_total, cpu_source = parse_size(settings.system_memory), "configured"
        budgets["cpu"] = DeviceBudget("cpu", cpu_total, margin, cpu_source)
        return cls(settings, budgets, metrics)

    # -- public ----------------------------------------------------------------------------
    def state(self, binding: Binding, model: str) -> ModelState:
        key = (binding.instance_name, model)
        state = self._states.get(key)
        if state is None:
            kind = gpu_device(binding.memory_device(model))
            devices = self.placements(kind) or [kind]
            for device in devices:
                if device not in self.budgets:  # e.g. gpu:3 on a 2-GPU machine: 0 bytes
                    self.budgets[device] = DeviceBudget(device, 0, 0, "no such device")
            state = ModelState(
                binding=binding,
                model=model,
                device=devices[0] if devices else kind,
                kind=kind,
                need=binding.memory_estimate(model) or 0,
                max_concurrency=max(1, binding.max_concurrency(model)),
                keep_alive=binding.config.keep_alive,
            )
            self._states[key] = state
        return state

    async def acquire(
        self,
        binding: Binding,
        model: str,
        *,
        queue_timeout: float | None = None,
        keep_alive: float | None = None,
    ) -> Lease:
        """Wait for a slot on ``model`` (loading it, evicting idle models as needed)."""
        if self._closed:
            raise BindingUnavailable("The server is shutting down.")
        state = self.state(binding, self._copy(binding, model))
        self._refuse_if_never_fits(state)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if (
            state.status == "loaded"
            and state.active < state.max_concurrency
            and state.device not in self._drained
            and not self._waiters_of(state)
        ):
            return self._grant(state, keep_alive, 0.0)  # no need to queue: max_queue aside
        timeout = queue_timeout if queue_timeout is not None else self.settings.queue_timeout
        self._admit(state, timeout)
        waiter = _Waiter(state, loop.create_future(), now, keep_alive)
        self._queue.append(waiter)
        self._pump()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except asyncio.TimeoutError:
            self._forget(waiter)
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                return future.result()  # granted right at the deadline
            self.metrics.requests.labels(outcome="queue_timeout").inc()
            raise QueueTimeout(
                f"Waited {timeout:g} s in the queue for '{state.key}' without a free slot.",
                retry_after=self._retry_after(state, timeout),
            ) from None
        except asyncio.CancelledError:
            self._forget(waiter)  # the client went away while waiting
            if (
                waiter.future.done()
                and not waiter.future.cancelled()
                and waiter.future.exception() is None
            ):
                waiter.future.result().release()
            raise

    def _admit(self, state: ModelState, timeout: float) -> None:
        """Refuse (503 ``Overloaded``) a request that would have to queue when the queue is
        at ``max_queue``, or when its estimated wait exceeds ``timeout`` and it is not the
        first in line for its model."""
        if len(self._queue) >= self.settings.max_queue:
            self.metrics.requests.labels(outcome="overloaded").inc()
            raise Overloaded(
                f"The request queue is full ({self.settings.max_queue} waiting, [resources] "
                "max_queue); retry later.",
                retry_after=self._retry_after(state, timeout),
            )
        ahead = len(self._waiters_of(state))
        wait = self._estimated_wait(state, ahead)
        if ahead and wait is not None and wait > timeout:
            self.metrics.requests.labels(outcome="overloaded").inc()
            raise Overloaded(
                f"The queue for '{state.key}' would take about {wait:.1f} s ({ahead} waiting), "
                f"more than this request's queue_timeout of {timeout:g} s; retry later.",
                retry_after=self._retry_after(state, timeout),
            )

    def _estimated_wait(self, state: ModelState, ahead: int) -> float | None:
        """Seconds a request queued behind ``ahead`` others for ``state`` should wait (see
        the module docstring); None when it must wait for a turn whose length is unknown."""
        load = 0.0
        if state.status != "loaded":
            load = state.load_seconds or 0.0
            if state.status == "loading":
                load = max(0.0, load - (time.monotonic() - state.load_started))
        running = state.active if state.status == "loaded" else 0
        turns = running + ahead + 1 - state.max_concurrency
        if turns <= 0:
            return load
        if state.service_seconds is None:
            return None
        return load + turns / state.max_concurrency * state.service_seconds

    def _refuse_if_never_fits(self, state: ModelState) -> None:
        """507 at once for a model that cannot fit any device it may be placed on, even after
        evicting every model that may be evicted there (pinned ones never are)."""
        if state.status != "unloaded":
            return
        room = {device: self._room_for(state, device) for device in self.placements(state.kind)}
        if room and state.need <= max(room.values()):
            return
        device = max(room, key=lambda d: self.budgets[d].capacity) if room else state.device
        budget = self.budgets[device]
        pinned = budget.capacity - room.get(device, budget.capacity)
        beside = f", {format_bytes(pinned)} of it held by pinned models" if pinned else ""
        largest = " (the largest there is)" if len(room) > 1 else ""
        raise InsufficientMemory(
            f"Model '{state.key}' needs {format_bytes(state.need)} of {state.kind} memory "
            f"but the whole {device} budget{largest} is {format_bytes(budget.capacity)} "
            f"({budget.source}{beside}); it can never be loaded. Raise [resources] "
            f"{'gpu' if state.kind.startswith('gpu') else 'system'}_memory, preload less "
            "or use a smaller model.",
            param="model_name",
        )

    def _room_for(self, state: ModelState, device: str) -> int:
        """The budget of ``device`` less what pinned models (other than ``state``) hold."""
        pinned = sum(
            s.need
            for s in self._states.values()
            if s.device == device and s.pinned and s is not state and s.status != "unloaded"
        )
        return self.budgets[device].capacity - pinned

    def _copy(self, binding: Binding, model: str) -> str:
        """Which copy of ``model`` the next request waits for: here the model itself; a
        cluster picks among its replicas (see ``lollms_server.cluster``)."""
        return model

    def placements(self, kind: str) -> list[str]:
        """The budgets a model of device ``kind`` ("cpu", "gpu:0"...) may be loaded on: here
        the one device itself; a cluster has one per node (see ``lollms_server.cluster``)."""
        return [kind]

    def _place(self, state: ModelState) -> None:
        """Before loading: pick the device of ``state`` among its placements, the one with
        the most free memory, else the one that eviction would free most on."""
        devices = self.placements(state.kind)
        if len(devices) < 2:
            return

        def room(device: str) -> tuple[bool, int]:
            budget = self.budgets[device]
            movable = sum(
                s.need
                for s in self._states.values()
                if s.device == device and s.status != "unloaded" and not s.pinned
            )
            if budget.free >= state.need:
                return True, budget.free  # fits now: the most free memory
            return False, budget.free + movable  # else: where eviction frees the most

        state.device = max(devices, key=room)

    async def preload(self, binding: Binding, model: str) -> None:
        """Load ``model`` now and pin it: never evicted, never expired."""
        state = self.state(binding, model)
        self._refuse_if_never_fits(state)
        state.pinned = True
        try:
            lease = await self.acquire(binding, model, queue_timeout=3600)
        except BaseException:
            state.pinned = False
            raise
        lease.release()

    async def shutdown(self, grace: float = 10.0) -> None:
        """Refuse new requests, fail the queued ones, let running generations end (up to
        ``grace`` seconds), then unload every model."""
        self._closed = True
        if self._recheck is not None:
            self._recheck.cancel()
        for waiter in list(self._queue):
            if not waiter.future.done():
                waiter.future.set_exception(BindingUnavailable("The server is shutting down."))
        self._queue.clear()
        if self.active_leases():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._no_leases.wait(), grace)
        for state in list(self._states.values()):
            if state.expiry is not None:
                state.expiry.cancel()
            if state.task is not None:
                await asyncio.gather(state.task, return_exceptions=True)
            if state.status == "loaded":
                if state.active:
                    logger.warning(
                        "'%s' still has %d running generation(s) at shutdown: "
                        "left to the process exit",
                        state.key,
                        state.active,
                    )
                    continue
                await self._unload(state, "shutdown")

    def model_lost(self, instance: str, model: str, reason: str) -> None:
        """A binding lost a loaded model (its host died): mark it unloaded and free its memory
        now, not at the next request. Generations still running on it fail on their own."""
        state = self._states.get((instance, model))
        if state is None or state.status != "loaded":
            return  # a load or unload in progress settles the state itself
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        state.status = "unloaded"
        self.budgets[state.device].used -= state.need
        self.metrics.unloads.labels(reason="lost").inc()
        logger.warning("'%s' is no longer loaded: %s", state.key, reason)
        self._pump()

    def loaded(self) -> list[ModelState]:
        return [s for s in self._states.values() if s.status == "loaded"]

    def active_leases(self) -> int:
        return sum(s.active for s in self._states.values())

    async def current_status(self) -> dict[str, Any]:
        """The status now (a cluster's worker asks the scheduler actor)."""
        await self.refresh()
        return self.status()

    async def refresh(self) -> None:
        """Bring ``status()`` up to date (here it always is; see cluster/client.py)."""

    def status(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        models = []
        for state in self._states.values():
            if state.status == "unloaded" and not self._waiters_of(state):
                continue
            waiting = self._waiters_of(state)
            models.append(
                {
                    "binding_name": state.binding.instance_name,
                    "model_name": state.model,
                    "status": state.status,
                    "device": state.device,
                    "memory_bytes": state.need,
                    "active_generations": state.active,
                    "max_concurrency": state.max_concurrency,
                    "pinned": state.pinned,
                    "keep_alive": self._keep_alive(state),
                    "idle_seconds": round(now - state.last_used, 3)
                    if state.active == 0 and state.last_used
                    else None,
                    "queued": len(waiting),
                    "oldest_wait_seconds": round(now - waiting[0].enqueued, 3) if waiting else None,
                }
            )
        return {
            "devices": {
                name: {
                    "total_bytes": b.total,
                    "budget_bytes": b.capacity,
                    "used_bytes": b.used,
                    "free_bytes": b.free,
                    "source": b.source,
                }
                for name, b in self.budgets.items()
            },
            "models": models,
            "queue": {"depth": len(self._queue), "max_queue": self.settings.max_queue},
            "active_generations": self.active_leases(),
        }

    # -- internals: every state change goes through these ----------------------------------
    def _grant(self, state: ModelState, keep_alive: float | None, waited: float) -> Lease:
        state.active += 1
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        # Like Ollama: each request's keep_alive (or, without one, the configured one) sets how
        # long the model stays after it; it does not stick to later requests.
        state.keep_alive = keep_alive if keep_alive is not None else state.binding.config.keep_alive
        self.metrics.queue_wait.observe(waited)
        return Lease(self, state, waited)

    def _release(self, lease: Lease) -> None:
        state = lease.state
        state.active -= 1
        state.last_used = time.monotonic()
        state.service_seconds = _average(state.service_seconds, state.last_used - lease.granted)
        if self._closed and not self.active_leases():
            self._no_leases.set()
        self._pump()  # grants the next waiters, then settles the model if it stays idle

    def _keep_alive(self, state: ModelState) -> float:
        if state.pinned:
            return -1
        return state.keep_alive if state.keep_alive is not None else self.settings.keep_alive

    def _expire(self, state: ModelState) -> None:
        state.expiry = None
        if (
            state.status == "loaded"
            and state.active == 0
            and not state.pinned
            and not self._waiters_of(state)
        ):
            self._start_unload(state, "keep_alive")
        # else: its waiters will run on it; when they are gone, _settle_idle re-arms the timer

    def _settle_idle(self) -> None:
        """Every loaded model with nothing running and nobody waiting unloads now
        (keep_alive 0) or gets its keep_alive timer: whatever made it idle (a released lease,
        a load whose requests left or timed out meanwhile, an expiry that found waiters who
        then left)."""
        for state in list(self._states.values()):
            if (
                state.status != "loaded"
                or state.active
                or state.pinned
                or state.expiry is not None
                or self._waiters_of(state)
            ):
                continue
            keep = self._keep_alive(state)
            if keep == 0:
                self._start_unload(state, "keep_alive")
            elif keep > 0:
                state.expiry = asyncio.get_running_loop().call_later(keep, self._expire, state)

    def _waiters_of(self, state: ModelState) -> list[_Waiter]:
        return [w for w in self._queue if w.state is state]

    def _forget(self, waiter: _Waiter) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(waiter)
        self._pump()

    def _retry_after(self, state: ModelState, timeout: float) -> int:
        """Seconds after which a request for ``state`` should fit its ``timeout``: from the
        estimated wait of the queue as it is, or (nothing measured yet) from its length."""
        wait = self._estimated_wait(state, len(self._waiters_of(state)))
        if wait is None:
            return max(1, min(60, int(self.settings.swap_delay) + 1 + len(self._queue) // 4))
        return max(1, min(_MAX_RETRY_AFTER, math.ceil(wait - timeout)))

    def _pump(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        drained: set[str] = set()  # devices where an aged waiter has priority
        self._drained = drained
        for waiter in list(self._queue):
            if waiter.future.done():
                self._queue.remove(waiter)
                continue
            state = waiter.state
            aged = now - waiter.enqueued >= self.settings.swap_delay
            if state.status == "loaded":
                if state.active < state.max_concurrency and state.device not in drained:
                    self._queue.remove(waiter)
                    waiter.future.set_result(
                        self._grant(state, waiter.keep_alive, now - waiter.enqueued)
                    )
                continue
            if state.status != "unloaded":
                continue
            self._place(state)
            if state.device in drained:
                continue
            if self._make_room(state, aged):
                self._start_load(state)
            elif aged and self._could_fit(state):
                drained.add(state.device)  # stop feeding the models it must wait for
                if self._recheck is None:  # re-check as those models drain
                    self._recheck = loop.call_later(0.05, self._recheck_now)
        self._settle_idle()

    def _recheck_now(self) -> None:
        self._recheck = None
        self._pump()

    def _could_fit(self, state: ModelState) -> bool:
        """Whether evicting every unpinned model of the device would make enough room."""
        budget = self.budgets[state.device]
        movable = sum(
            s.need
            for s in self._states.values()
            if s.device == state.device and s.status != "unloaded" and not s.pinned
        )
        return budget.free + movable >= state.need

    def _make_room(self, state: ModelState, aged: bool) -> bool:
        budget = self.budgets[state.device]
        if budget.free >= state.need:
            return True
        candidates = sorted(
            (
                s
                for s in self._states.values()
                if s.device == state.device
                and s.status == "loaded"
                and s.active == 0
                and not s.pinned
                and (aged or not self._waiters_of(s))
            ),
            key=lambda s: s.last_used,
        )
        pending = sum(
            s.need
            for s in self._states.values()
            if s.device == state.device and s.status == "unloading"
        )
        if budget.free + pending + sum(s.need for s in candidates) < state.need:
            return False
        for victim in candidates:
            if budget.free + pending >= state.need:
                break
            self.metrics.evictions.inc()
            logger.info("Evicting idle model '%s' to make room for '%s'", victim.key, state.key)
            self._start_unload(victim, "evicted")
            pending += victim.need
        return False  # the load starts once the unloads have freed the memory

    def _start_load(self, state: ModelState) -> None:
        state.status = "loading"
        state.load_started = time.monotonic()
        self.budgets[state.device].used += state.need
        state.task = asyncio.get_running_loop().create_task(self._load(state))

    async def _load(self, state: ModelState) -> None:
        budget = self.budgets[state.device]
        started = time.perf_counter()
        try:
            await state.binding.load(state.model)
        except BaseException as exc:  # cancelled too: never left "loading" with memory held
            state.status = "unloaded"
            budget.used -= state.need
            error = (
                exc
                if isinstance(exc, LollmsError)
                else BindingUnavailable(
                    f"Loading '{state.key}' failed: {type(exc).__name__}: {exc}"
                )
            )
            logger.error("Loading '%s' failed: %s", state.key, error)
            for waiter in self._waiters_of(state):
                self._queue.remove(waiter)
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            measured = state.binding.memory_used(state.model)
            if measured:
                budget.used += measured - state.need
                state.need = measured
            state.status = "loaded"
            state.last_used = time.monotonic()
            state.load_seconds = _average(state.load_seconds, state.last_used - state.load_started)
            self.metrics.loads.inc()
            logger.info(
                "Loaded '%s' (%s, %s) in %.2f s",
                state.key,
                state.device,
                format_bytes(state.need),
                time.perf_counter() - started,
            )
        finally:
            state.task = None
            self._pump()

    def _start_unload(self, state: ModelState, reason: str) -> None:
        state.status = "unloading"
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        state.task = asyncio.get_running_loop().create_task(self._unload(state, reason))

    async def _unload(self, state: ModelState, reason: str) -> None:
        if state.active:  # never under a running generation
            logger.error(
                "Not unloading '%s' (%s): %d generation(s) running", state.key, reason, state.active
            )
            state.status = "loaded"
            return
        state.status = "unloading"
        try:
            await state.binding.unload(state.model)
        except Exception:
            logger.exception("Unloading '%s' failed", state.key)
        finally:
            state.status = "unloaded"
            self.budgets[state.device].used -= state.need
            state.task = None
            self.metrics.unloads.labels(reason=reason).inc()
            logger.info("Unloaded '%s' (%s)", state.key, reason)
            self._pump()

    # -- administration: the load / unload / pin requests of api/native/models_admin.py ----
    async def load_model(self, binding: Binding, model: str, *, pin: bool = False) -> ModelState:
        """Load ``model`` now, as a request would (queued, evicting idle models). Pinned, it
        stays loaded; otherwise its keep_alive timer starts once it is idle."""
        if pin:
            await self.preload(binding, model)
        else:
            lease = await self.acquire(binding, model)
            lease.release()
        return self.state(binding, model)

    async def pin_model(self, binding: Binding, model: str, pinned: bool) -> ModelState:
        """Pin (never evicted, never expired) or unpin ``model``. Pinning a model that is not
        loaded loads it; an unpinned idle model gets its keep_alive timer."""
        state = self.state(binding, model)
        if pinned and state.status != "loaded":
            await self.preload(binding, model)
            return state
        state.pinned = pinned
        if pinned and state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        self._pump()
        return state

    async def unload_model(self, binding: Binding, model: str) -> str | None:
        """Unload ``model`` now, pinned or not, unless something uses it. Returns why it
        cannot (not loaded, generations running, requests waiting), or None once it is
        unloaded. Never under a running generation: the check and the start of the unload
        happen with no ``await`` between them."""
        state = self._states.get((binding.instance_name, model))
        if state is None or state.status == "unloaded":
            return "is not loaded"
        if state.status != "loaded":
            return f"is {state.status}"
        if state.active:
            return f"has {state.active} generation(s) running"
        waiting = len(self._waiters_of(state))
        if waiting:
            return f"has {waiting} request(s) waiting for it"
        state.pinned = False
        self._start_unload(state, "admin")
        if state.task is not None:
            await asyncio.shield(state.task)  # a client that leaves does not stop the unload
        return None
