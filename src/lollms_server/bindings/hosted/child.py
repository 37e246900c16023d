"""A model host: one child process running one binding instance for one model.

Started by ``process.py`` as ``python -m lollms_server.bindings.hosted.child``. It reads
requests (one JSON object per line) on stdin and writes replies and events on the original
stdout; everything else the process prints (llama.cpp logs included) goes to stderr, so
nothing but the protocol ever reaches the server's pipe. It exits when stdin closes.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.types import BindingContext
from lollms_server.plugins import import_file


class LineSession(abc.ABC):
    """Requests read from one line stream (one JSON object per line), each started by
    ``dispatch``; answers written back with their ids. Those still running when the stream
    ends are cancelled."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self.write = write
        self.tasks: dict[int, asyncio.Task[None]] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.write(wire.encode(message))

    @abc.abstractmethod
    def dispatch(self, msg: dict[str, Any]) -> None:
        """Start one request."""

    async def run(self, reader: asyncio.StreamReader) -> None:
        """Serve the stream until it ends; then cancel what it started."""
        try:
            while line := await reader.readline():
                self.dispatch(wire.decode(line))
        finally:
            for task in list(self.tasks.values()):
                task.cancel()


class HostSession(LineSession):
    """The requests of one line stream (the pipe of a child process, or a socket of a Ray
    host's channel) run on one binding: replies and events written back with their ids."""

    def __init__(
        self,
        write: Callable[[bytes], object],
        binding: Binding | None = None,
        *,
        ops: frozenset[str] | None = None,
        activity: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(write)
        self.binding = binding
        self.ops = ops  # the operations this stream may ask for (None: all)
        self.activity = activity  # told +1/-1 as generations start and end

    async def call(self, msg: dict[str, Any]) -> None:
        """Run one request and send its one reply (or its error)."""
        op, rid = msg["op"], msg["id"]
        try:
            if op == "init" and self.binding is None:
                self.binding = build_binding(msg)
                result: Any = os.getpid()
            elif self.binding is None:
                raise RuntimeError("model host used before init")
            else:
                result = await run_operation(self.binding, op, msg)
            self.send({"id": rid, "ok": True, "result": result})
        except Exception as exc:
            self.send({"id": rid, "error": wire.error_to_wire(exc)})

    async def generate(self, rid: int, request: dict[str, Any]) -> None:
        if self.activity is not None:
            self.activity(1)
        stream: Any = None
        try:
            if self.binding is None:
                raise RuntimeError("model host used before init")
            stream = self.binding.generate(wire.request_from_wire(request))
            async for event in stream:
                self.send({"id": rid, "ev": wire.event_to_wire(event)})
            self.send({"id": rid, "done": True})
        except asyncio.CancelledError:
            self.send({"id": rid, "done": True, "cancelled": True})
        except Exception as exc:  # a bad request too: the caller always gets an answer
            self.send({"id": rid, "error": wire.error_to_wire(exc)})
        finally:
            if stream is not None:
                with contextlib.suppress(Exception):
                    await stream.aclose()
            self.tasks.pop(rid, None)
            if self.activity is not None:
                self.activity(-1)

    def dispatch(self, msg: dict[str, Any]) -> None:
        """Start one request (a generation runs as its own task, cancellable by id)."""
        op = msg.get("op")
        if self.ops is not None and op not in self.ops:
            error = RuntimeError(f"operation '{op}' is not served here")
            self.send({"id": msg.get("id", -1), "error": wire.error_to_wire(error)})
        elif op == "generate":
            self.tasks[msg["id"]] = asyncio.create_task(self.generate(msg["id"], msg["req"]))
        elif op == "cancel":
            task = self.tasks.get(msg["id"])
            if task is not None:
                task.cancel()
        else:
            asyncio.create_task(self.call(msg))  # noqa: RUF006 - replies on its own


def _pipe_writer(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        while data:
            written = os.write(fd, data)
            data = data[written:]

    return write


async def _serve_pipe(out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    session = HostSession(_pipe_writer(out_fd))
    await session.run(reader)
    if session.binding is not None:
        await session.binding.close()


def build_binding(msg: dict[str, Any]) -> Binding:
    """The binding instance an ``init`` message describes (see ``HostedBinding``)."""
    if msg.get("file"):
        module = import_file(msg["module"], Path(msg["file"]))
    else:
        module = importlib.import_module(msg["module"])
    cls: Any = module
    for part in msg["qualname"].split("."):
        cls = getattr(cls, part)
    config = cls.Config.model_validate(msg["config"])
    return cls(config, BindingContext(msg["instance"], Path(msg["models_path"])))  # type: ignore[no-any-return]


async def run_operation(binding: Binding, op: str, msg: dict[str, Any]) -> Any:
    """One host operation (everything but generate) on the built binding."""
    model = msg["model"]
    if op == "load":  # answers the measured size (None: not measured)
        await binding.load(model)
        return binding.memory_used(model)
    if op == "unload":
        return await binding.unload(model)
    if op == "tokenize":
        return await binding.tokenize(model, msg["text"])
    if op == "detokenize":
        return await binding.detokenize(model, msg["tokens"])
    if op == "model_info":
        return (await binding.model_info(model)).model_dump(mode="json")
    if op == "embed":
        return wire.embedding_to_wire(await binding.embed(model, msg["texts"]))
    raise RuntimeError(f"unknown model host operation '{op}'")


def main() -> None:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints (Python or C) must not corrupt the protocol pipe
    asyncio.run(_serve_pipe(out_fd))


if __name__ == "__main__":
    main()
