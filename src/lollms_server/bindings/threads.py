"""Blocking engines on the event loop: the two shapes every in-process binding needs.

* :func:`run_stoppable` runs one blocking call (a whole image, a batch of embeddings) in a
  thread and returns its result;
* :func:`stream_thread` runs a blocking producer (a token loop, a denoising loop) in a thread
  and yields what it emits, in order, as it comes.

In both, the blocking code receives a ``threading.Event`` that is set when the caller goes
away (the client disconnected, the request was cancelled): check it between steps and return
early. Both wait for the thread to let go before they finish, so the model's lease covers all
of the engine's work and the next request never runs beside an orphaned one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

__all__ = ["Emit", "run_stoppable", "stream_thread"]

T = TypeVar("T")
Emit = Callable[[T], bool]
"""What a producer calls with each item; it answers True once the consumer has gone."""


async def run_stoppable(work: Callable[[threading.Event], T]) -> T:
    """``work(stop)`` in a worker thread; ``stop`` is set if this call is cancelled, and the
    cancellation waits until ``work`` has returned."""
    stop = threading.Event()
    task = asyncio.ensure_future(asyncio.to_thread(work, stop))
    try:
        return await asyncio.shield(task)
    finally:
        stop.set()
        if not task.done():
            with contextlib.suppress(Exception):
                await task  # it stops at its next check of ``stop``


class _End:
    """Put on the queue after the producer's last item; holds what it raised, if anything."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def stream_thread(
    produce: Callable[[Emit[T], threading.Event], None], executor: Executor | None = None
) -> AsyncIterator[T]:
    """Run ``produce(emit, stop)`` in a thread (of ``executor``, or the loop's default) and
    yield each item it emits. What ``produce`` raises is raised here after its items. Closing
    the iterator early sets ``stop`` and waits for ``produce`` to return."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    put = queue.put_nowait
    stop = threading.Event()

    def emit(item: T) -> bool:
        loop.call_soon_threadsafe(put, item)
        return stop.is_set()

    def run() -> None:
        try:
            produce(emit, stop)
        except BaseException as exc:  # handed to the event loop, raised there
            loop.call_soon_threadsafe(put, _End(exc))
        else:
            loop.call_soon_threadsafe(put, _End())

    worker = loop.run_in_executor(executor, run)
    try:
        while type(item := await queue.get()) is not _End:
            yield item
        if item.error is not None:
            raise item.error
    finally:
        stop.set()
        await asyncio.shield(worker)
