"""WorkflowRun: a generation made of several steps, with the face of a GenerationRun.

A personality's script and the tool-calling loop start several generations (each holding its
own scheduler lease only while it runs) and emit progress, tool calls and text. Front ends
stream a WorkflowRun exactly like a single run. The body runs in its own task under a time
limit; closing the run (client gone) cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import Event, Finished, TextDelta, Usage
from lollms_server.errors import LollmsError, WorkflowFailed, WorkflowTimeout

__all__ = ["Emit", "WorkflowRun"]

logger = logging.getLogger("lollms_server.workflow")

Emit = Callable[[Event], Awaitable[None]]
_DONE = object()


class WorkflowRun:
    """Runs ``body(emit)`` and yields what it emits, then the summed usage and ``Finished``."""

    queue_ms = 0.0

    def __init__(
        self,
        *,
        request_id: str,
        binding: Binding,
        model: str,
        body: Callable[[Emit], Awaitable[None]],
        label: str,
        timeout: float | None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self.binding = binding  # the request's text binding (the body may use others)
        self.model = model
        self.label = label
        self.timeout = timeout
        self.started = time.perf_counter()
        self.first_token_ms: float | None = None
        self.finish_reason = "stop"
        self.metadata: dict[str, Any] = {}
        self._body = body
        self._usage = [0, 0]
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._on_close = on_close  # frees what the body holds, run or not (a process)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _emit_into(self, queue: asyncio.Queue[Any], event: Event) -> None:
        if isinstance(event, Usage):
            self._usage[0] += event.prompt_tokens
            self._usage[1] += event.completion_tokens
            return
        if isinstance(event, Finished):
            self.finish_reason = event.finish_reason
            self.metadata.update(event.metadata)
            return
        if self.first_token_ms is None and isinstance(event, TextDelta):
            self.first_token_ms = (time.perf_counter() - self.started) * 1000
        if self._closed:  # nobody reads any more: drop, never block the producer
            return
        await queue.put(event)

    async def _guarded(self, emit: Emit) -> None:
        """The body, with its own failures turned into LollmsErrors (so that a TimeoutError
        it raises is not taken for the time limit, and SystemExit cannot stop the server)."""
        try:
            await self._body(emit)
        except (LollmsError, asyncio.CancelledError):
            raise
        except BaseException as exc:
            logger.error(
                "%s failed: %s: %s",
                self.label,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, SystemExit | KeyboardInterrupt),
            )
            raise WorkflowFailed(f"{self.label} failed: {type(exc).__name__}: {exc}") from None

    async def _drive(self, queue: asyncio.Queue[Any]) -> None:
        async def emit(event: Event) -> None:
            await self._emit_into(queue, event)

        outcome: Any = _DONE
        try:
            await asyncio.wait_for(self._guarded(emit), self.timeout)
        except asyncio.TimeoutError:
            outcome = WorkflowTimeout(
                f"{self.label} did not finish within {self.timeout:g} s; stopped."
            )
        except LollmsError as exc:
            outcome = exc
        if not self._closed:
            await queue.put(outcome)

    async def _iterate(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        self._task = asyncio.create_task(self._drive(queue))
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
            yield Usage(prompt_tokens=self._usage[0], completion_tokens=self._usage[1])
            yield Finished(self.finish_reason, dict(self.metadata))
        finally:
            await self.aclose()

    def close(self) -> None:
        """Stop the body (idempotent); its generations release their leases as they end."""
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def aclose(self) -> None:
        task = self._task
        self.close()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def timings(self) -> dict[str, float | None]:
        return {
            "queue_ms": 0.0,
            "first_token_ms": None
            if self.first_token_ms is None
            else round(self.first_token_ms, 3),
            "total_ms": round((time.perf_counter() - self.started) * 1000, 3),
        }
