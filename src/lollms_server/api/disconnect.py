"""Cancel a request's work when its client disconnects (for non-streaming responses).

Streaming responses watch for the disconnect themselves (api/streaming.py); a plain JSON
response would otherwise keep generating for nobody until the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

from fastapi import Request

from lollms_server.errors import LollmsError
from lollms_server.generation.service import (
    CollectedOutput,
    GenerationRequest,
    GenerationRun,
    GenerationService,
    Run,
    collect,
)

__all__ = [
    "ClientDisconnected",
    "cancel_on_disconnect",
    "collect_run",
    "first_ready",
    "start_run",
    "start_stream",
]

T = TypeVar("T")


class ClientDisconnected(LollmsError):
    status_code = 499
    error_type = "client_disconnected"


async def cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                gone = True
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone:  # our own cancellation: the client left, nobody reads the answer
            raise ClientDisconnected("The client disconnected; generation stopped.") from None
        raise
    finally:
        watcher.cancel()


async def start_run(request: Request, service: GenerationService, body: GenerationRequest) -> Run:
    """Start a generation (queueing, loading), given up if the client leaves meanwhile."""
    return await cancel_on_disconnect(request, service.start(body))


FIRST_EVENT_WAIT = 1.0  # seconds a stream waits for the engine to accept the request


async def start_stream(
    request: Request, service: GenerationService, body: GenerationRequest
) -> Run:
    """:func:`start_run` for a streamed answer: the engine's immediate refusal (within
    ``FIRST_EVENT_WAIT``, or the binding's ``first_event_wait``) is raised here, an HTTP
    error, not an error event in a 200. One watch of the client covers both steps."""
    return await cancel_on_disconnect(request, _primed(service, body))


async def _primed(service: GenerationService, body: GenerationRequest) -> Run:
    run = await service.start(body)
    if isinstance(run, GenerationRun):
        try:
            wait = _first_event_wait(run)  # a binding's own hook: it may raise
        except BaseException:
            await run.aclose()
            raise
        await run.prime(wait)  # closes the run if it fails or is cancelled
    return run


def _first_event_wait(run: GenerationRun) -> float:
    """``FIRST_EVENT_WAIT``, or longer for a binding that says its first event may come later
    and still be refused (``first_event_wait(request)``: a relay retrying its upstream, whose
    errors then reach the client as HTTP statuses). Output is sent as soon as it exists."""
    hook = getattr(run.binding, "first_event_wait", None)
    return max(FIRST_EVENT_WAIT, float(hook(run.request))) if callable(hook) else FIRST_EVENT_WAIT


def first_ready(run: Run) -> bool:
    """Whether a started stream's first output is already there (see SSEResponse)."""
    return isinstance(run, GenerationRun) and run.first_ready()


async def collect_run(request: Request, run: Run) -> CollectedOutput:
    """The whole output of ``run`` for a non-streaming answer; the lease is always released."""
    if isinstance(run, GenerationRun):  # not started yet: its binding may skip streaming
        run.request = replace(run.request, stream=False)
    try:
        return await cancel_on_disconnect(request, collect(run.__aiter__()))
    finally:
        await run.aclose()
