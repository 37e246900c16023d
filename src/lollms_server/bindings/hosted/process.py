"""The server side of one model host: a child process and the multiplexing of its requests.

Replies and events come back tagged with the id of the request they answer; one reader task
routes them to per-request queues. When the process ends on its own (a crash, a kill), every
pending request fails at once and ``on_death`` tells the owner, so the model is marked
unloaded without waiting for the next request.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import AsyncGenerator, Callable
from typing import Any

from lollms_server.bindings.events import Event
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.types import BindingRequest
from lollms_server.errors import ModelHostCrashed

__all__ = ["STOP_SECONDS", "HostProcess", "LineClient"]

logger = logging.getLogger(__name__)
STOP_SECONDS = 10.0
CHILD_MODULE = "lollms_server.bindings.hosted.child"


class LineClient(abc.ABC):
    """Requests multiplexed over one line stream to a model host (``child.HostSession`` on
    the other end): replies and events come back tagged with the id of the request they
    answer, and one reader routes them to per-request queues. When the stream ends, every
    pending request fails at once and ``on_death`` tells the owner."""

    def __init__(self, label: str, on_death: Callable[[str], None] | None = None) -> None:
        self.label = label
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.dead: str | None = None
        self._stopping = False
        self._on_death = on_death

    async def _read_lines(self, reader: asyncio.StreamReader) -> None:
        """Route every message to its request until the stream ends (or is garbled)."""
        try:
            while line := await reader.readline():
                message = wire.decode(line)
                queue = self.pending.get(message.get("id", -1))
                if queue is not None:
                    queue.put_nowait(message)
        except OSError:  # the connection broke: it ended, the host may well be alive
            return
        except Exception as exc:  # a garbled stream is as fatal as a dead host
            logger.error("Model host %s sent an unreadable message: %s", self.label, exc)
            self._kill()

    @abc.abstractmethod
    def _kill(self) -> None:
        """End the host the hard way (a garbled stream, a cancel it ignored)."""

    def _died(self, reason: str) -> None:
        self.dead = reason
        for queue in self.pending.values():
            queue.put_nowait({"dead": reason})
        if not self._stopping and self._on_death is not None:
            self._on_death(reason)

    async def _send(self, message: dict[str, Any]) -> None:
        if self.dead is not None or self.writer is None:
            raise self.crashed()
        self.writer.write(wire.encode(message))
        try:
            await self.writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise self.crashed() from None

    def crashed(self) -> ModelHostCrashed:
        """The error every request on a dead host gets."""
        return ModelHostCrashed(
            f"The model host for '{self.label}' stopped ({self.dead or 'not running'}); "
            "this request failed and the next one starts a new host."
        )

    async def call(self, op: str, **fields: Any) -> Any:
        """One request and its one reply (errors re-raised as the server's own types)."""
        rid = next(self.ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[rid] = queue
        try:
            await self._send({"op": op, "id": rid, **fields})
            reply = await queue.get()
        except asyncio.CancelledError:  # the caller left: the other side may stop the work
            if self.dead is None and self.writer is not None:
                self.writer.write(wire.encode({"op": "cancel", "id": rid}))
            raise
        finally:
            self.pending.pop(rid, None)
        if "dead" in reply:
            raise self.crashed()
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply.get("result")

    async def stream(self, request: BindingRequest, grace: float) -> AsyncGenerator[Event, None]:
        """The events of one generation; closing it early cancels the work in the host, and
        kills the host if the work has not stopped ``grace`` seconds later."""
        rid = next(self.ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[rid] = queue
        finished = False
        try:
            await self._send({"op": "generate", "id": rid, "req": wire.request_to_wire(request)})
            while True:
                message = await queue.get()
                event = message.get("ev")
                if event is not None:
                    yield wire.event_from_wire(event)
                    continue
                finished = True
                if message.get("done"):
                    return
                if "error" in message:
                    raise wire.error_from_wire(message["error"])
                raise self.crashed()
        finally:
            if not finished and self.dead is None:
                await self._cancel(rid, queue, grace)
            self.pending.pop(rid, None)

    async def _cancel(self, rid: int, queue: asyncio.Queue[dict[str, Any]], grace: float) -> None:
        """Stop request ``rid`` in the host (the client left); a host whose engine does not
        stop within ``grace`` seconds (one long native step) is killed."""
        try:
            await self._send({"op": "cancel", "id": rid})
            await asyncio.wait_for(_until_final(queue), grace)
        except ModelHostCrashed:
            return
        except asyncio.TimeoutError:
            logger.warning(
                "Model host %s did not stop a cancelled generation in %.0f s: killing it",
                self.label,
                grace,
            )
            self._kill()


class HostProcess(LineClient):
    """One child process running one binding instance for one model."""

    def __init__(self, label: str, on_death: Callable[[str], None] | None = None) -> None:
        super().__init__(label, on_death)
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return self.proc.pid if self.proc else None

    async def start(self, init: dict[str, Any]) -> None:
        """Start the child and build the binding instance in it."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            CHILD_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 30,
        )
        self.writer = self.proc.stdin
        self._reader = asyncio.create_task(self._read())
        await self.call("init", **init)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        await self._read_lines(self.proc.stdout)
        self._died(_exit_reason(await self.proc.wait()))

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.proc is not None:
                self.proc.kill()

    async def stop(self) -> None:
        """End the child: close its stdin, kill it after the grace period."""
        self._stopping = True
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the host exits when its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), STOP_SECONDS)
        except asyncio.TimeoutError:
            logger.warning(
                "Model host %s did not exit in %.0f s: killing it", self.label, STOP_SECONDS
            )
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader


async def _until_final(queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Wait for the message that ends a request (done, error, or the host died)."""
    while "ev" in await queue.get():
        pass


def _exit_reason(code: int) -> str:
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"
