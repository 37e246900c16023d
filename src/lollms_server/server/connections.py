"""Slow and idle clients: read deadlines and a connection cap for uvicorn's HTTP protocol.

uvicorn closes a connection that stays idle between requests (``timeout_keep_alive``) but
waits forever for the headers and the body of a request that arrive slowly, and does not
bound the size of headers with httptools. ``TimedHttpToolsProtocol`` adds, per connection:

* a header deadline: a request's line and headers must all arrive within ``header_timeout``
  of its first byte (or of the connection's opening); then 408 and the connection closes
  (closed without an answer when not a byte came);
* a body deadline: the whole body must arrive within ``body_timeout`` of the end of the
  headers; then the application sees a disconnect, the client gets 408 when no answer had
  started, and the connection closes. Time while the application itself is not reading (flow
  control paused, or ``Expect: 100-continue`` not answered yet) does not count;
* a header size cap (``max_header_bytes``): 431 and the connection closes;
* a connection cap (``max_connections``): a connection beyond it closes the longest idle
  keep-alive connection; with none idle, its request gets uvicorn's 503
  (``limit_concurrency``).

One timer per connection at most, armed and cancelled by the parser's callbacks.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lollms_server.api.errors import envelope
from lollms_server.config import ServerSettings

__all__ = [
    "ConnectionLimits",
    "TimedHttpToolsProtocol",
    "protocol_class",
    "raise_open_file_limit",
    "uvicorn_options",
]

logger = logging.getLogger(__name__)

_SPARE_FILES = 256  # descriptors kept for model files, sockets to upstreams, logs...


@dataclass(frozen=True)
class ConnectionLimits:
    """The ``[server]`` settings the protocol enforces (defaults: ``config.py``)."""

    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_header_bytes: int = 65536
    max_connections: int = 1024

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
            max_header_bytes=server.max_header_bytes,
            max_connections=server.max_connections,
        )


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with read deadlines, a header cap and idle eviction."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = True  # the next bytes belong to a request line or headers
        self._header_bytes = 0  # bytes of the current request's head received so far
        self._heads = 0  # request heads completed on this connection
        self._rejected = False  # a head over the cap was answered 431: the rest is ignored
        self._request_begun = False  # a byte of the current request has arrived
        self._idle_since: float | None = None  # waiting for a next request since (loop time)

    # -- connection -------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.limits.header_timeout, self._header_timeout)
        self._evict_idle_if_full()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._idle_since = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_head, heads = self._reading_headers, self._heads
        super().data_received(data)
        # Only chunks wholly inside one request head count (memory stays bounded all the same:
        # the parser holds at most the cap plus two chunks).
        if in_head and self._reading_headers and heads == self._heads:
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._head_too_large()

    def _head_too_large(self) -> None:
        self._rejected = True
        self._disarm()
        if not self.transport.is_closing():
            self._answer_and_close(
                431,
                "request_header_fields_too_large",
                f"The request line and headers exceed {self.limits.max_header_bytes} bytes "
                "([server] max_header_bytes).",
            )

    # -- parser callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._request_begun, self._idle_since = True, None
        if self._deadline is None:  # not re-armed by a dripping first request
            self._arm(self.limits.header_timeout, self._header_timeout)

    def on_headers_complete(self) -> None:
        self._reading_headers, self._heads = False, self._heads + 1
        self._disarm()
        head = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if self._rejected or head > self.limits.max_header_bytes:
            self._head_too_large()  # the application never sees this request
            return
        super().on_headers_complete()
        if not (self.parser.should_upgrade() and self._should_upgrade()):
            self._arm(self.limits.body_timeout, self._body_timeout)

    def on_body(self, body: bytes) -> None:
        if not self._rejected:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        super().on_message_complete()
        self._disarm()
        self._reading_headers, self._header_bytes, self._request_begun = True, 0, False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle until the next request
            self._idle_since = self.loop.time()

    # -- deadlines --------------------------------------------------------------------------
    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _header_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        logger.debug("Closing %s: no complete request head in time", self.client)
        previous_done = self.cycle is None or self.cycle.response_complete
        if self._request_begun and previous_done:
            self._answer_and_close(
                408,
                "request_timeout",
                f"The request line and headers did not arrive within "
                f"{self.limits.header_timeout:g} s ([server] header_timeout).",
            )
        else:
            self.transport.close()

    def _body_timeout(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if self.flow.read_paused or (
            cycle.waiting_for_100_continue and not cycle.response_started
        ):  # the application is not reading yet: not the client's delay
            self._arm(self.limits.body_timeout, self._body_timeout)
            return
        logger.debug("Closing %s: request body not received in time", self.client)
        started = cycle.response_started
        cycle.disconnected = True  # the app reads a disconnect; what it sends is dropped
        cycle.message_event.set()
        if started:
            self.transport.close()
        else:
            self._answer_and_close(
                408,
                "request_timeout",
                f"The request body did not arrive within {self.limits.body_timeout:g} s "
                "([server] body_timeout).",
            )

    def _answer_and_close(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps(envelope(error_type, message)).encode()
        phrase = http.HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {phrase}\r\n".encode()]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # -- connection cap ---------------------------------------------------------------------
    def _evict_idle_if_full(self) -> None:
        """Over ``max_connections``: close the connection idle the longest, if any."""
        if len(self.connections) <= self.limits.max_connections:
            return
        idle = [
            c
            for c in self.connections
            if isinstance(c, TimedHttpToolsProtocol)
            and c._idle_since is not None
            and not c.transport.is_closing()
        ]
        if idle:
            oldest = min(idle, key=lambda c: c._idle_since or 0.0)
            oldest._idle_since = None
            oldest.transport.close()
            # connection_lost runs on a later turn of the loop, maybe after this connection's
            # request was parsed: uncount the evicted one now, or uvicorn answers that 503.
            self.connections.discard(oldest)


def protocol_class(limits: ConnectionLimits) -> type[TimedHttpToolsProtocol]:
    """A ``TimedHttpToolsProtocol`` enforcing ``limits`` (uvicorn builds one per connection)."""

    class ConfiguredProtocol(TimedHttpToolsProtocol):
        pass

    ConfiguredProtocol.limits = limits
    return ConfiguredProtocol


def uvicorn_options(server: ServerSettings) -> dict[str, Any]:
    """The connection settings of ``[server]`` as ``uvicorn.run`` keyword arguments."""
    return {
        "http": protocol_class(ConnectionLimits.from_settings(server)),
        # Longer than clients' pool idle times, so a reused connection is not closed under a
        # new request (uvicorn's 5 s default made pooled clients see resets).
        "timeout_keep_alive": server.keep_alive_timeout,
        # uvicorn answers 503 once connections (or running requests) reach this number.
        "limit_concurrency": server.max_connections + 1,
    }


def raise_open_file_limit(max_connections: int) -> None:
    """Raise this process's soft limit of open files to hold ``max_connections`` sockets
    (as far as the hard limit allows; a warning when it cannot)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _SPARE_FILES
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < wanted:
        logger.warning(
            "The open-file limit (%d) is below [server] max_connections + %d: connections "
            "beyond it will fail to be accepted; raise `ulimit -n` or lower max_connections.",
            target,
            _SPARE_FILES,
        )
