"""A started generation: its events (think tags split, timings kept), its lease, and the
fold of its events into one result for clients that did not ask for a stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass, field

from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import (
    Event,
    Finished,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.types import BindingRequest
from lollms_server.generation.fold import CollectedOutput, Fold
from lollms_server.generation.thinking import ThinkSplitter
from lollms_server.generation.workflow import WorkflowRun
from lollms_server.resources.scheduler import Lease

__all__ = ["CollectedOutput", "GenerationRun", "Run", "collect"]


@dataclass
class GenerationRun:
    """A started generation: where it runs, and its events (iterate once)."""

    request_id: str
    binding: Binding
    model: str
    request: BindingRequest
    started: float
    queue_ms: float
    lease: Lease
    first_token_ms: float | None = None
    outcome: str = "cancelled"
    completion_tokens: int = 0
    _iterator: AsyncGenerator[Event, None] | None = field(default=None, init=False, repr=False)
    _first: asyncio.Future[Event] | None = field(default=None, init=False, repr=False)

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._first is not None:
            assert self._iterator is not None
            return _Primed(self._first, self._iterator)
        self._iterator = self._iterate()
        return self._iterator

    async def prime(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for the first event before a stream's response starts:
        an engine that refuses the request at once (a prompt over its context, a grammar it
        cannot parse) then raises here, and the client gets a 4xx instead of a 200 whose
        stream holds an error event. A first event that takes longer (a long prompt) is
        awaited by the stream itself; nothing is lost either way."""
        self._iterator = self._iterate()
        self._first = asyncio.ensure_future(self._iterator.__anext__())
        try:
            await asyncio.wait({self._first}, timeout=wait)
        except BaseException:
            await self.aclose()
            raise
        if self._first.done() and not self._first.cancelled():
            error = self._first.exception()
            if error is not None and not isinstance(error, StopAsyncIteration):
                await self.aclose()
                raise error

    def first_ready(self) -> bool:
        """Whether :meth:`prime` already holds the first piece of output (text, thoughts or a
        tool call), so that a stream can send its headers together with it."""
        first = self._first
        return (
            first is not None
            and first.done()
            and not first.cancelled()
            and first.exception() is None
            and type(first.result()) in (TextDelta, ThoughtsDelta, ToolCall)
        )

    async def _iterate(self) -> AsyncGenerator[Event, None]:
        splitter = ThinkSplitter()
        source = self.binding.generate(self.request)
        try:
            async for event in source:
                if type(event) is TextDelta:
                    if self.first_token_ms is None:
                        self.first_token_ms = (time.perf_counter() - self.started) * 1000
                    for piece in splitter.feed(event.text):
                        yield piece
                    continue
                if type(event) is Finished:
                    self.outcome = "completed"
                    for piece in splitter.flush():
                        yield piece
                elif type(event) is Usage:
                    self.completion_tokens = event.completion_tokens
                yield event
        except Exception:
            self.outcome = "failed"
            raise
        finally:
            try:
                await source.aclose()  # type: ignore[attr-defined]
            finally:
                self.close()

    def close(self) -> None:
        """Release the lease (idempotent); also for a run that was never iterated."""
        if self.lease.released:
            return
        self.lease.release()
        metrics = self.lease.scheduler.metrics
        instance = self.binding.instance_name
        metrics.requests.labels(outcome=self.outcome).inc()
        metrics.generation_time.labels(binding=instance).observe(
            time.perf_counter() - self.started - self.queue_ms / 1000
        )
        if self.completion_tokens:
            metrics.tokens.labels(binding=instance).inc(self.completion_tokens)

    async def aclose(self) -> None:
        """Close the events' generator (stopping the binding's generation at once, not when
        the garbage collector finds it) and release the lease."""
        first = self._first
        if first is not None and not first.done():  # primed, its first event still coming
            first.cancel()  # runs the generator's finally (engine stopped, lease released)
            with contextlib.suppress(BaseException):
                await first
        iterator = self._iterator
        if iterator is not None and getattr(iterator, "ag_running", False):
            return  # another task is in it: its own finally releases the lease
        try:
            if iterator is not None:
                with contextlib.suppress(Exception):  # already closed
                    await iterator.aclose()
        finally:
            self.close()

    def timings(self) -> dict[str, float | None]:
        total = (time.perf_counter() - self.started) * 1000
        return {
            "queue_ms": round(self.queue_ms, 3),
            "first_token_ms": None
            if self.first_token_ms is None
            else round(self.first_token_ms, 3),
            "total_ms": round(total, 3),
        }


class _Primed:
    """A primed run's events: the first from :meth:`GenerationRun.prime`, then the run's own
    generator, handed on directly (no extra generator frame on the per-token path)."""

    def __init__(self, first: asyncio.Future[Event], rest: AsyncGenerator[Event, None]) -> None:
        self._first: asyncio.Future[Event] | None = first
        self._rest = rest

    def __aiter__(self) -> _Primed:
        return self

    def __anext__(self) -> Awaitable[Event]:
        first, self._first = self._first, None
        if first is not None:
            return first  # awaiting it raises StopAsyncIteration for an empty run
        return self._rest.__anext__()


Run = GenerationRun | WorkflowRun


async def collect(events: AsyncIterator[Event]) -> CollectedOutput:
    """Gather a whole run into one result (for clients that did not ask for a stream)."""
    fold = Fold()
    async for event in events:
        fold.add(event)
    return fold.result()
