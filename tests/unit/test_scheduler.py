"""Scheduler behaviour with the scripted binding declaring memory sizes (no GPU needed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from lollms_server.bindings.testing import ScriptedBinding, ScriptedConfig
from lollms_server.bindings.types import BindingContext
from lollms_server.config import ResourcesSettings
from lollms_server.errors import BindingUnavailable, InsufficientMemory, Overloaded, QueueTimeout
from lollms_server.resources.memory import DeviceBudget, parse_size
from lollms_server.resources.scheduler import Scheduler

GIB = 1024**3


def _binding(name: str = "fake", **config: object) -> ScriptedBinding:
    defaults: dict[str, object] = {
        "models": ["a", "b", "c"],
        "memory_bytes": {"a": 6 * GIB, "b": 6 * GIB, "c": 3 * GIB},
        "max_concurrency": 1,
    }
    defaults.update(config)
    return ScriptedBinding(ScriptedConfig(**defaults), BindingContext(name, Path("/none")))


def _scheduler(cpu_gib: float = 10, **settings: object) -> Scheduler:
    resources = ResourcesSettings(**{"keep_alive": 300, "swap_delay": 0.3, **settings})
    budgets = {
        "cpu": DeviceBudget("cpu", int(cpu_gib * GIB), 0, "test"),
        "gpu:0": DeviceBudget("gpu:0", 0, 0, "no GPU (test)"),
    }
    return Scheduler(resources, budgets)


async def _settle(s: Scheduler) -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)
        if not any(st.task for st in s._states.values()):
            return


def test_parse_size() -> None:
    assert parse_size("24GiB") == 24 * GIB
    assert parse_size("512 MB") == 512_000_000
    assert parse_size(1024) == 1024
    with pytest.raises(ValueError):
        parse_size("lots")


async def test_model_that_never_fits_is_refused_at_once() -> None:
    s = _scheduler(cpu_gib=4)
    with pytest.raises(InsufficientMemory) as info:
        await s.acquire(_binding(), "a")
    assert info.value.status_code == 507
    assert "6.0 GiB" in info.value.message and "4.0 GiB" in info.value.message
    gpu = _binding("gpu-instance", device="gpu", memory_bytes={"a": 1})
    with pytest.raises(InsufficientMemory, match="no GPU"):
        await s.acquire(gpu, "a")


async def test_two_models_that_do_not_fit_together_swap() -> None:
    s, b = _scheduler(), _binding()
    lease = await s.acquire(b, "a")
    lease.release()
    lease = await s.acquire(b, "b")  # a is idle: evicted to make room
    assert b.loaded == {"b"}
    assert b.events == [("load", "a"), ("unload", "a"), ("load", "b")]
    assert s.budgets["cpu"].used == 6 * GIB
    lease.release()


async def test_lru_idle_model_is_evicted_first() -> None:
    s = _scheduler(cpu_gib=9)
    b = _binding(
        memory_bytes={"a": 3 * GIB, "b": 3 * GIB, "c": 3 * GIB, "d": 3 * GIB},
        models=["a", "b", "c", "d"],
    )
    for model in ("a", "b", "c"):
        (await s.acquire(b, model)).release()
        await asyncio.sleep(0.01)
    (await s.acquire(b, "a")).release()  # a is now the most recently used
    (await s.acquire(b, "d")).release()
    assert b.loaded == {"a", "c", "d"}
    assert ("unload", "b") in b.events and ("unload", "a") not in b.events


async def test_pinned_model_is_never_evicted() -> None:
    s, b = _scheduler(), _binding()
    await s.preload(b, "a")
    with pytest.raises(InsufficientMemory, match="held by pinned models"):  # at once
        await asyncio.wait_for(s.acquire(b, "b", queue_timeout=5), 0.1)
    assert b.loaded == {"a"}
    (await s.acquire(b, "c")).release()  # fits beside the pinned one
    assert b.loaded == {"a", "c"}


async def test_keep_alive_expiry_and_zero_and_forever() -> None:
    s, b = _scheduler(), _binding()
    (await s.acquire(b, "c", keep_alive=0.1)).release()
    assert b.loaded == {"c"}
    await asyncio.sleep(0.25)
    assert b.loaded == set()
    (await s.acquire(b, "c", keep_alive=0)).release()
    await _settle(s)
    assert b.loaded == set()
    (await s.acquire(b, "c", keep_alive=-1)).release()
    await asyncio.sleep(0.2)
    assert b.loaded == {"c"}


async def test_keep_alive_of_one_request_does_not_stick() -> None:
    s, b = _scheduler(keep_alive=0.1), _binding()
    (await s.acquire(b, "c", keep_alive=-1)).release()  # this one: stay
    (await s.acquire(b, "c")).release()  # this one: the configured 0.1 s
    await asyncio.sleep(0.3)
    assert b.loaded == set()


async def test_model_left_idle_by_a_cancelled_load_still_expires() -> None:
    """The request that started a load leaves before it ends: nobody releases a lease, yet
    the model must not stay loaded forever."""
    s, b = _scheduler(keep_alive=0.3), _binding(load_delay_s=0.2)
    first = asyncio.create_task(s.acquire(b, "c"))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.25)  # loaded by now (at 0.2 s), idle, expiring at 0.5 s
    assert b.loaded == {"c"}
    await asyncio.sleep(0.45)
    assert b.loaded == set()
    timed_out = asyncio.create_task(s.acquire(b, "a", keep_alive=0, queue_timeout=0.1))
    with pytest.raises(QueueTimeout):  # the load outlives the request: unloaded after it
        await timed_out
    await asyncio.sleep(0.6)  # the load ends at 0.2 s, the configured keep_alive at 0.5 s
    await _settle(s)
    assert b.loaded == set()


async def test_drain_rechecks_do_not_pile_up() -> None:
    s, b = _scheduler(swap_delay=0.05, max_queue=500), _binding()
    busy = await s.acquire(b, "a")  # "b" must wait for it: the device drains
    waiter = asyncio.create_task(s.acquire(b, "b", queue_timeout=5))
    await asyncio.sleep(0.1)
    pumps = 0
    pump = s._pump

    def counting() -> None:
        nonlocal pumps
        pumps += 1
        pump()

    s._pump = counting  # type: ignore[method-assign]
    for _ in range(20):  # clients coming and going during the drain
        with pytest.raises(QueueTimeout):
            await s.acquire(b, "c", queue_timeout=0.02)
    pumps = 0
    await asyncio.sleep(0.5)
    assert pumps <= 12  # one re-check every 50 ms, not one chain per event
    busy.release()
    (await waiter).release()


async def test_no_queue_needed_no_queue_limit() -> None:
    """max_queue bounds waiting: a request that can run at once is not refused because the
    queue is full of requests for another model."""
    s, b = _scheduler(max_queue=2), _binding(max_concurrency=2)
    running = await s.acquire(b, "a")
    waiting = [asyncio.create_task(s.acquire(b, "b", queue_timeout=0.3)) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert len(s._queue) == 2  # the queue is full...
    second = await asyncio.wait_for(s.acquire(b, "a"), 0.1)  # ...yet this one runs at once
    assert second.waited == 0.0 and s.state(b, "a").active == 2
    second.release()
    running.release()
    for task in waiting:
        with contextlib.suppress(QueueTimeout):
            (await task).release()


async def test_preload_that_cannot_fit_beside_pinned_models_fails_at_once() -> None:
    s, b = _scheduler(), _binding()
    await s.preload(b, "a")
    with pytest.raises(InsufficientMemory):
        await asyncio.wait_for(s.preload(b, "b"), 0.1)
    assert not s.state(b, "b").pinned


async def test_shutdown() -> None:
    s, b = _scheduler(), _binding()
    running = await s.acquire(b, "a")
    asyncio.get_running_loop().call_later(0.1, running.release)  # ends during the grace
    (await s.acquire(b, "c")).release()
    await s.shutdown(grace=2)
    assert b.loaded == set() and s.active_leases() == 0
    with pytest.raises(BindingUnavailable, match="shutting down"):
        await asyncio.wait_for(s.acquire(b, "c"), 0.1)


async def test_shutdown_leaves_a_generation_that_outlives_the_grace() -> None:
    s, b = _scheduler(), _binding()
    running = await s.acquire(b, "a")
    await s.shutdown(grace=0.1)  # no assertion error, no unload under it
    assert b.loaded == {"a"}
    running.release()


async def test_never_unloaded_under_a_running_generation() -> None:
    s, b = _scheduler(), _binding()
    running = await s.acquire(b, "a", keep_alive=0)
    other = asyncio.create_task(s.acquire(b, "b", queue_timeout=5))
    await asyncio.sleep(0.5)  # well past swap_delay: b is aged, a is busy
    assert b.loaded == {"a"} and not other.done()
    running.release()
    lease = await other
    assert b.loaded == {"b"}
    lease.release()


async def test_full_queue_is_overloaded_with_retry_after() -> None:
    s, b = _scheduler(max_queue=2), _binding()
    held = await s.acquire(b, "a")
    waiting = [asyncio.create_task(s.acquire(b, "a", queue_timeout=5)) for _ in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(Overloaded) as info:
        await s.acquire(b, "a")
    assert info.value.status_code == 503 and info.value.retry_after
    held.release()
    for task in waiting:
        (await task).release()


async def test_queue_timeout_is_accurate() -> None:
    s, b = _scheduler(), _binding()
    held = await s.acquire(b, "a")
    started = time.perf_counter()
    with pytest.raises(QueueTimeout) as info:
        await s.acquire(b, "a", queue_timeout=0.3)
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 0.4
    assert info.value.error_type == "queue_timeout"
    assert s.status()["queue"]["depth"] == 0
    held.release()


async def test_per_model_concurrency() -> None:
    s, b = _scheduler(), _binding(max_concurrency=3)
    leases = [await s.acquire(b, "a") for _ in range(3)]
    fourth = asyncio.create_task(s.acquire(b, "a", queue_timeout=5))
    await asyncio.sleep(0.05)
    assert not fourth.done()
    assert s.status()["models"][0]["active_generations"] == 3
    leases[0].release()
    leases.append(await fourth)
    for lease in leases[1:]:
        lease.release()
    assert s.active_leases() == 0


async def test_concurrent_first_requests_load_once() -> None:
    s, b = _scheduler(), _binding(load_delay_s=0.1, max_concurrency=8)
    leases = await asyncio.gather(*(s.acquire(b, "a") for _ in range(8)))
    assert b.load_count == 1
    for lease in leases:
        lease.release()


async def test_cancelled_waiter_leaves_the_queue() -> None:
    s, b = _scheduler(), _binding()
    held = await s.acquire(b, "a")
    waiters = [asyncio.create_task(s.acquire(b, "a", queue_timeout=5)) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert s.status()["queue"]["depth"] == 5
    for task in waiters:
        task.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert s.status()["queue"]["depth"] == 0
    held.release()
    assert s.active_leases() == 0


async def test_alternating_workload_prefers_the_loaded_model() -> None:
    """Room for one model; requests for a and b interleaved: far fewer swaps than FIFO."""
    s, b = _scheduler(swap_delay=0.5), _binding(delay_s=0.005, max_concurrency=1)

    async def job(model: str) -> None:
        lease = await s.acquire(b, model, queue_timeout=30)
        await asyncio.sleep(0.01)
        lease.release()

    jobs = [asyncio.create_task(job("a" if i % 2 == 0 else "b")) for i in range(20)]
    await asyncio.gather(*jobs)
    loads = [e for e in b.events if e[0] == "load"]
    assert len(loads) <= 4  # plain FIFO would load 20 times


async def test_failed_load_fails_its_waiters_and_recovers() -> None:
    s, b = _scheduler(), _binding(fail_on_load=True)
    with pytest.raises(BindingUnavailable):
        await s.acquire(b, "a")
    assert s.budgets["cpu"].used == 0
    b.config.fail_on_load = False
    (await s.acquire(b, "a")).release()
    assert b.loaded == {"a"}


async def test_cancelled_load_releases_its_memory_and_waiters() -> None:
    s, b = _scheduler(), _binding(load_delay_s=0.5)
    waiter = asyncio.create_task(s.acquire(b, "c", queue_timeout=2))
    await asyncio.sleep(0.05)
    task = s.state(b, "c").task
    assert task is not None
    task.cancel()
    with pytest.raises(BindingUnavailable, match="CancelledError"):
        await waiter
    assert s.state(b, "c").status == "unloaded" and s.budgets["cpu"].used == 0


async def test_status_reports_memory_and_queue() -> None:
    s, b = _scheduler(), _binding()
    held = await s.acquire(b, "a")
    waiter = asyncio.create_task(s.acquire(b, "a", queue_timeout=5))
    await asyncio.sleep(0.05)
    status = s.status()
    assert status["devices"]["cpu"]["used_bytes"] == 6 * GIB
    assert status["devices"]["cpu"]["free_bytes"] == 4 * GIB
    model = status["models"][0]
    assert model["status"] == "loaded" and model["queued"] == 1
    assert model["oldest_wait_seconds"] >= 0.04
    held.release()
    (await waiter).release()
    await s.shutdown()
    assert b.loaded == set()


async def test_one_budget_per_gpu_from_config() -> None:
    settings = ResourcesSettings(gpu_memory=["2GiB", "8GiB"], system_memory="1GiB", safety_margin=0)
    s = Scheduler.from_settings(settings)
    assert {k: b.capacity for k, b in s.budgets.items()} == {
        "gpu:0": 2 * GIB,
        "gpu:1": 8 * GIB,
        "cpu": GIB,
    }
    big = {"a": 6 * GIB}
    on_second = _binding("second", device="cuda:1", memory_bytes=big)
    (await s.acquire(on_second, "a")).release()
    assert s.budgets["gpu:1"].used == 6 * GIB and s.budgets["gpu:0"].used == 0
    with pytest.raises(InsufficientMemory, match="gpu:0"):
        await s.acquire(_binding("first", device="gpu", memory_bytes=big), "a")
    with pytest.raises(InsufficientMemory, match="gpu:5"):
        await s.acquire(_binding("missing", device="gpu:5", memory_bytes={"a": 1}), "a")
    await s.shutdown()


def test_auto_without_nvidia_reports_no_gpu() -> None:
    s = Scheduler.from_settings(ResourcesSettings())
    gpu = s.budgets["gpu:0"]
    if gpu.total == 0:  # this machine: no NVIDIA GPU (or no nvidia-ml-py)
        assert "no GPU" in gpu.source
    assert s.budgets["cpu"].total > 0


async def test_burst_for_a_model_being_loaded_is_admitted() -> None:
    """Waiters for a load are not refused by queue length: the default max_queue holds a
    burst of 500 (64 did not), and the measured wait fits the timeout."""
    s = _scheduler(swap_delay=2)
    assert s.settings.max_queue >= 1000
    b = _binding(load_delay_s=0.2, max_concurrency=4, keep_alive=0)

    async def one() -> None:
        lease = await s.acquire(b, "a")
        await asyncio.sleep(0.001)
        lease.release()

    await one()  # measures a load and a service time, then unloads (keep_alive 0)
    await _settle(s)
    assert b.loaded == set()
    results = await asyncio.gather(*(one() for _ in range(500)), return_exceptions=True)
    assert [r for r in results if r is not None] == []
    assert b.load_count == 2


async def test_wait_estimated_past_the_timeout_is_refused_at_once() -> None:
    s, b = _scheduler(), _binding()
    state = s.state(b, "a")
    held = await s.acquire(b, "a")
    state.service_seconds = 10.0  # as if measured: 10 s a request, one slot
    waiting = [asyncio.create_task(s.acquire(b, "a", queue_timeout=30)) for _ in range(3)]
    await asyncio.sleep(0.01)  # queued: they expect 10, 20 and 30 s
    assert not any(task.done() for task in waiting)
    with pytest.raises(Overloaded, match="about 40.0 s") as info:
        await asyncio.wait_for(s.acquire(b, "a", queue_timeout=30), 0.05)  # at once
    assert info.value.retry_after == 10  # 40 s of queue minus the 30 s it may wait
    other = await asyncio.wait_for(s.acquire(b, "c", queue_timeout=30), 1)  # its own queue
    other.release()
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    held.release()


async def test_first_in_line_is_admitted_whatever_the_estimate() -> None:
    """Refusing the first request in line gains nothing (it gets the next free slot), and it
    is the one that starts a load: it waits, and times out if the estimate was right."""
    s, b = _scheduler(), _binding(load_delay_s=0.3)
    state = s.state(b, "c")
    state.load_seconds, state.service_seconds = 5.0, 1.0
    first = asyncio.create_task(s.acquire(b, "c", queue_timeout=2))
    await asyncio.sleep(0.01)
    assert state.status == "loading"
    with pytest.raises(Overloaded) as info:  # 5 s of load left, then the first one's 1 s
        await s.acquire(b, "c", queue_timeout=2)
    assert info.value.retry_after == 4  # 6 s of queue minus the 2 s it may wait
    (await first).release()  # the load took 0.3 s, not 5: the estimate learns it
    assert state.load_seconds == pytest.approx(5.0 + 0.2 * (0.3 - 5.0), abs=0.05)
