"""Direct connections for the cluster's hot path, beside Ray's control plane.

On a small machine one Ray actor call costs about 2 ms and the first item of a Ray streaming
generator about 2.5 ms (``bench/cluster.py`` prints where the first token's time goes), so the
events of a generation go from a model host to an API worker over a plain TCP connection
instead: the line protocol of ``bindings/hosted`` (requests multiplexed by id, one JSON
object per line), served by a ``HostSession`` in the host actor. Ray still places, starts,
watches and kills the actors; a channel's address and secret travel only over Ray.

Security: a channel listens on the node's Ray address (loopback for ``address = "local"``),
on a port the system picks; the first line of every connection must be the channel's secret
(compared in constant time), or the connection is closed before anything else is read.
Operators firewall these ports like Ray's own (README, "Scaling out").
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import ray

from lollms_server.bindings.hosted import wire
from lollms_server.bindings.hosted.child import LineSession
from lollms_server.bindings.hosted.process import LineClient

__all__ = ["CallSession", "ChannelClient", "Session", "serve_channel"]

logger = logging.getLogger(__name__)

_LINE_LIMIT = 1 << 30  # one message (a request with images, a media event) at most
_HELLO_SECONDS = 5.0  # a connection that does not present the secret by then is closed
_CONNECT_SECONDS = 2.0  # to connect and be welcomed (a firewall that drops: this long)
_WELCOME = b"ok\n"  # the answer to the right secret (a wrong one: the connection closes)


class Session(Protocol):
    """What serves one authenticated connection (``child.HostSession``)."""

    async def run(self, reader: asyncio.StreamReader) -> None: ...


async def serve_channel(
    secret: Callable[[], str], session: Callable[[Callable[[bytes], object]], Session]
) -> tuple[asyncio.Server, str]:
    """Listen on this node's Ray address; each connection that presents ``secret()`` (read
    when it connects: the owner may change it) is served by ``session(write)``. Returns the
    server and its ``host:port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        expected = secret().encode() + b"\n"
        try:
            hello = await asyncio.wait_for(reader.readexactly(len(expected)), _HELLO_SECONDS)
            if not hmac.compare_digest(hello, expected):
                logger.warning("A channel connection did not present the secret: closed")
                return
            writer.write(_WELCOME)
            await session(writer.write).run(reader)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        except Exception as exc:  # a malformed message: this connection ends, nothing else
            logger.warning("A channel connection sent a malformed message: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    server = await asyncio.start_server(handle, host, 0, limit=_LINE_LIMIT)
    port = server.sockets[0].getsockname()[1]
    return server, f"{host}:{port}"


class CallSession(LineSession):
    """Calls served over a channel: ``calls`` answer (``{"id", "result"}`` or ``{"id",
    "error"}``) and may be cancelled by id; ``casts`` answer nothing (a release). Arguments
    come as the message's ``args`` object."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        calls: dict[str, Callable[..., Coroutine[Any, Any, Any]]],
        casts: dict[str, Callable[..., Coroutine[Any, Any, Any]]],
    ) -> None:
        super().__init__(write)
        self.calls = calls
        self.casts = casts
        self._casting: set[asyncio.Task[Any]] = set()

    async def _call(self, rid: int, op: str, args: dict[str, Any]) -> None:
        try:
            self.send({"id": rid, "result": await self.calls[op](**args)})
        except asyncio.CancelledError:
            pass  # the caller left: it expects no answer
        except Exception as exc:
            self.send({"id": rid, "error": wire.error_to_wire(exc)})
        finally:
            self.tasks.pop(rid, None)

    def dispatch(self, msg: dict[str, Any]) -> None:
        op, rid, args = msg.get("op"), msg.get("id", -1), msg.get("args") or {}
        if op in self.calls:
            self.tasks[rid] = asyncio.create_task(self._call(rid, op, args))
        elif op in self.casts:
            cast = asyncio.create_task(self.casts[op](**args))
            self._casting.add(cast)
            cast.add_done_callback(self._casting.discard)
        elif op == "cancel":
            task = self.tasks.get(rid)
            if task is not None:
                task.cancel()
        else:
            error = RuntimeError(f"operation '{op}' is not served here")
            self.send({"id": rid, "error": wire.error_to_wire(error)})


class ChannelClient(LineClient):
    """An API worker's connection to a model host's channel; ``kill`` ends the host when a
    cancelled generation does not stop (through Ray: the channel cannot kill)."""

    def __init__(self, label: str, address: str, secret: str, kill: Callable[[], None]) -> None:
        super().__init__(label)
        self.address = address
        self._secret = secret
        self._kill_host = kill
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and present the secret (OSError, TimeoutError: the host is unreachable)."""
        host, _, port = self.address.rpartition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), limit=_LINE_LIMIT), _CONNECT_SECONDS
        )
        writer.write(self._secret.encode() + b"\n")
        try:
            welcome = await asyncio.wait_for(reader.readline(), _CONNECT_SECONDS)
        except BaseException:
            writer.close()
            raise
        if welcome != _WELCOME:
            writer.close()
            raise ConnectionRefusedError("the channel refused the secret")
        self.writer = writer
        self._reader = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        await self._read_lines(reader)
        self._died("its connection closed")
        self.close()

    def cast(self, op: str, **args: Any) -> None:
        """Send a message that has no answer (nothing when the connection is closed)."""
        if self.dead is None and self.writer is not None:
            self.writer.write(wire.encode({"op": op, "id": 0, "args": args}))

    async def request(self, op: str, **args: Any) -> Any:
        """One call of a ``CallSession``; cancelled, it cancels the call over there."""
        return await self.call(op, args=args)

    def lost(self, reason: str) -> None:
        """The host died (Ray says so): fail what is pending and close the connection."""
        if self.dead is None:
            self._died(reason)
        self.close()

    def _kill(self) -> None:
        self._kill_host()

    def close(self) -> None:
        """Close the connection (pending requests fail as the reader ends)."""
        self._stopping = True
        if self.writer is not None:
            self.writer.close()
