"""Server-Sent Events: the one encoder for streamed responses.

Routes hand over an async iterator of JSON-able dicts; each becomes one ``data: <json>``
event. An exception raised after the stream started becomes one ``error`` event (same body
as the JSON error envelope, plus ``"type": "error"``) and the stream ends. A client that
disconnects cancels the iterator at once (not at the next write), which closes the
generation under it; an idle stream gets a ``: ping`` comment every ``ping_seconds``.

This is a small ASGI response rather than sse-starlette: the token path is the hot path, and
sse-starlette's per-event timeout scope cost more CPU than the rest of the relay together
(measured with bench/relay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lollms_server.api.errors import error_payload
from lollms_server.api.responses import json_bytes

__all__ = ["NDJSONResponse", "SSEResponse", "encode_event", "sse_response"]

logger = logging.getLogger(__name__)
PING_SECONDS = 15.0
_PING = b": ping\n\n"


def encode_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json_bytes(payload) + b"\n\n"


class SSEResponse(Response):
    """An ASGI response streaming ``source`` as Server-Sent Events."""

    media_type = "text/event-stream"

    def __init__(
        self,
        source: AsyncIterator[dict[str, Any]],
        ping_seconds: float = PING_SECONDS,
        on_close: Callable[[], Awaitable[None]] | None = None,
        terminator: bytes | None = None,
        error_event: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        first_ready: bool = False,
    ) -> None:
        super().__init__(
            status_code=200, headers={"cache-control": "no-cache", "x-accel-buffering": "no"}
        )
        # A stream has no length: drop the content-length Response computed for no body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.source = source
        self.on_close = on_close
        self.terminator = terminator  # e.g. OpenAI's "data: [DONE]", sent last in any case
        self.error_event = error_event or _native_error
        self.ping_seconds = ping_seconds
        self._disconnected = False
        self._sending = False
        self._last_sent = 0.0
        # first_ready: the source's first item is at hand (a primed run), so the headers go
        # out with it, back to back, rather than as a packet of their own that the client
        # wakes up for.
        self.first_ready = first_ready
        self._started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        streamer = asyncio.current_task()
        assert streamer is not None
        watcher = asyncio.create_task(self._watch_disconnect(receive, streamer))
        pinger = asyncio.create_task(self._ping(send, loop))
        try:  # from the first send on: whatever happens, on_close releases the generation
            if not self.first_ready:
                await self._start(send, loop)
            await self._stream(send, loop)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self._disconnected:
                raise  # server shutdown: let it through
            if hasattr(streamer, "uncancel"):
                streamer.uncancel()  # we cancelled it ourselves, and handled it
        except OSError:
            self._disconnected = True  # the socket went away while we wrote
        finally:
            watcher.cancel()
            pinger.cancel()
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if self.on_close is not None:
                # Runs even when the source never started (a generator's finally would not).
                await self.on_close()

    async def _start(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        self._started = True
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self._last_sent = loop.time()

    async def _stream(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        try:
            async for payload in self.source:
                if not self._started:
                    await self._start(send, loop)
                self._sending = True
                await send(
                    {"type": "http.response.body", "body": self.frame(payload), "more_body": True}
                )
                self._sending = False
                self._last_sent = loop.time()
        except Exception as exc:
            if not self._started:
                await self._start(send, loop)
            _, body = error_payload(exc)
            await send(
                {
                    "type": "http.response.body",
                    "body": self.frame(self.error_event(body)),
                    "more_body": True,
                }
            )
        if not self._started:
            await self._start(send, loop)
        if self.terminator is not None:
            await send({"type": "http.response.body", "body": self.terminator, "more_body": True})

    def frame(self, payload: dict[str, Any]) -> bytes:
        return encode_event(payload)

    async def _watch_disconnect(self, receive: Receive, streamer: asyncio.Task[Any]) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected = True
                streamer.cancel()
                return

    async def _ping(self, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        if self.ping_seconds <= 0:
            return
        while True:
            await asyncio.sleep(self.ping_seconds)
            if (
                self._started
                and not self._sending
                and loop.time() - self._last_sent >= self.ping_seconds
            ):
                self._sending = True
                try:
                    await send({"type": "http.response.body", "body": _PING, "more_body": True})
                finally:
                    self._sending = False
                self._last_sent = loop.time()


class NDJSONResponse(SSEResponse):
    """The same stream as newline-delimited JSON (Ollama's wire format); no pings."""

    media_type = "application/x-ndjson"

    def __init__(
        self,
        source: AsyncIterator[dict[str, Any]],
        on_close: Callable[[], Awaitable[None]] | None = None,
        error_event: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        first_ready: bool = False,
    ) -> None:
        super().__init__(
            source,
            ping_seconds=0,
            on_close=on_close,
            error_event=error_event,
            first_ready=first_ready,
        )

    def frame(self, payload: dict[str, Any]) -> bytes:
        return json_bytes(payload) + b"\n"


def _native_error(body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "error", **body}


def sse_response(
    source: AsyncIterator[dict[str, Any]],
    on_close: Callable[[], Awaitable[None]] | None = None,
    first_ready: bool = False,
) -> SSEResponse:
    return SSEResponse(source, on_close=on_close, first_ready=first_ready)
