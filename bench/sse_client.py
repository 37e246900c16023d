"""A lean blocking SSE client for the benchmarks: one keep-alive socket, httptools' C parser.

The benchmarks run client, server and engine on the same few cores, so the client's own CPU
slows the engine it measures. httpx's sync client spends about as much CPU per streamed event
as the server's whole relay (pure-Python h11 and line splitting); this client parses the HTTP
framing in C and does per event what the direct-engine callback does per chunk (one
``json.loads``), so the two paths are compared on equal terms. It only speaks what the
benchmarks need: ``POST`` with a JSON body, a chunked or sized response, ``data:`` events.
"""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Callable
from typing import Any

import httptools

__all__ = ["SSEClient", "StreamError"]


class StreamError(RuntimeError):
    """The server answered with a non-200 status or closed the connection mid-response."""


class _Response:
    """httptools callbacks: collects the status, splits the body into SSE events."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.pending = b""
        self.body = bytearray()  # kept for error responses only
        self.status = 0
        self.complete = False
        self.keep_alive = True
        self.parser: httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        if self.status != 200:
            self.body += data
            return
        self.pending += data
        while (end := self.pending.find(b"\n\n")) >= 0:
            event, self.pending = self.pending[:end], self.pending[end + 2 :]
            if event.startswith(b"data: "):
                self.on_event(json.loads(event[6:]))
            # anything else (": ping" comments) carries no data

    def on_message_complete(self) -> None:
        self.complete = True


class SSEClient:
    """``stream(path, payload, on_event)`` POSTs JSON and calls ``on_event`` per SSE event."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.address = (host, port)
        self.key = key
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self.sock is not None and select.select([self.sock], [], [], 0)[0]:
            self.close()  # readable while idle: the server closed its end (keep-alive timeout)
        if self.sock is None:
            self.sock = socket.create_connection(self.address)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.sock

    def stream(
        self, path: str, payload: dict[str, Any], on_event: Callable[[dict[str, Any]], None]
    ) -> None:
        body = json.dumps(payload).encode()
        self._exchange(
            f"POST {path}",
            b"Content-Type: application/json\r\nAccept: text/event-stream\r\n",
            body,
            on_event,
        )

    def get(self, path: str) -> None:
        """A GET whose (non-SSE) body is dropped; raises StreamError unless it answers 200."""
        self._exchange(f"GET {path}", b"", b"", lambda event: None)

    def _exchange(
        self, line: str, headers: bytes, body: bytes, on_event: Callable[[dict[str, Any]], None]
    ) -> None:
        head = (
            (
                f"{line} HTTP/1.1\r\nHost: {self.address[0]}:{self.address[1]}\r\n"
                f"Authorization: Bearer {self.key}\r\nContent-Length: {len(body)}\r\n"
            ).encode()
            + headers
            + b"\r\n"
        )
        sock = self._connect()
        sock.sendall(head + body)
        response = _Response(on_event)
        parser = httptools.HttpResponseParser(response)
        response.parser = parser
        try:
            while not response.complete:
                data = sock.recv(65536)
                if not data:
                    raise StreamError("the server closed the connection mid-response")
                parser.feed_data(data)
        except BaseException:
            self.close()
            raise
        if not response.keep_alive:
            self.close()
        if response.status != 200:
            raise StreamError(f"HTTP {response.status}: {bytes(response.body[:300])!r}")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> SSEClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
