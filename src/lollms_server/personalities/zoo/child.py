"""A zoo processor's own process: where its code is imported, built and run.

Started by :mod:`.isolated` as ``python -m lollms_server.personalities.zoo.child`` in the
personality's working folder, with an environment that holds none of the server's secrets.
Before any of the processor's code runs it lowers its own limits for good (CPU time, address
space, open files, file size), holds every thread to the processor's policy (writes only in
the working folder, no network unless allowed, the server not signalled: see
:mod:`.confine`) and forwards its log records to the server.

It speaks newline-delimited JSON on its original stdin/stdout (the model hosts' wire
format, :mod:`lollms_server.bindings.hosted.wire`); whatever the processor prints goes to
stderr. The server sends ``init`` then ``run``; the processor reaches the server only
through a :class:`RemotePort` (generate, tokenize, paint, show events), whose calls the
server checks and bounds (the client's limits, the request's model) on its side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import os
import resource
import sys
import tempfile
import threading
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any

from lollms_server.bindings.events import Event, Step, TextDelta, TextReplace
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.types import BindingRequest
from lollms_server.errors import LollmsError, WorkflowFailed, WorkflowUnavailable
from lollms_server.generation.requests import GenerationRequest
from lollms_server.personalities.model import Personality

__all__ = ["RemotePort", "event_from_wire", "event_to_wire", "main", "to_wire"]

_MAX_LOG = 4000  # characters of one forwarded log message


def to_wire(request: GenerationRequest) -> dict[str, Any]:
    """What the server needs of one generation a processor asks for (its conversation,
    sampling and options; the server picks the binding, model and limits itself)."""
    return wire.request_to_wire(
        BindingRequest(
            model=request.model_name or "",
            generation_type=request.generation_type,
            messages=request.messages,
            params=request.params,
            extra=request.extra,
            media=request.media,
        )
    )


def event_to_wire(event: Event) -> dict[str, Any]:
    """A text or step event a processor shows (the only kinds it may send)."""
    if isinstance(event, TextReplace):
        return {"k": "replace", "t": event.text}
    if isinstance(event, TextDelta | Step):
        return wire.event_to_wire(event)
    raise TypeError(f"a processor may not send {type(event).__name__} events")


def event_from_wire(data: Mapping[str, Any]) -> Event:
    """The event a processor sent; anything but text and steps is refused."""
    kind = data.get("k")
    if kind == "replace":
        return TextReplace(str(data["t"]))
    if kind == "text":
        return TextDelta(str(data["t"]))
    if kind == "step":
        found = data.get("d")
        return Step(
            str(data["kind"]),
            str(data.get("t") or ""),
            data.get("ok") if isinstance(data.get("ok"), bool) else None,
            found if isinstance(found, dict) else {},
        )
    raise ValueError(f"a processor may not send '{kind}' events")


class _Channel:
    """The child's end of the pipe: calls to the server and their replies."""

    def __init__(self, out_fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.out_fd = out_fd
        self.loop = loop
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._write = threading.Lock()  # log records come from any thread
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        data = wire.encode(message)
        with self._write:
            while data:
                data = data[os.write(self.out_fd, data) :]

    def open(self, op: str, **fields: Any) -> tuple[int, asyncio.Queue[dict[str, Any]]]:
        rid = next(self.ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[rid] = queue
        self.send({"op": op, "id": rid, **fields})
        return rid, queue

    async def call(self, op: str, **fields: Any) -> Any:
        rid, queue = self.open(op, **fields)
        try:
            reply = await queue.get()
        finally:
            self.pending.pop(rid, None)
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply.get("result")

    def dispatch(self, message: dict[str, Any]) -> None:
        queue = self.pending.get(message.get("id", -1))
        if queue is not None:
            queue.put_nowait(message)
        elif "op" in message:
            self.commands.put_nowait(message)


class RemotePort:
    """The :class:`~lollms_server.generation.port.GenerationPort` of a processor in its own
    process: every call goes to the server, which decides what runs."""

    def __init__(self, channel: _Channel, context: int | None, folder: Path) -> None:
        self.channel = channel
        self.context = context
        self.folder = folder

    async def events(
        self, request: GenerationRequest, personality: Personality | None = None
    ) -> AsyncGenerator[Event, None]:
        rid, queue = self.channel.open("generate", req=to_wire(request))
        done = False
        try:
            while True:
                reply = await queue.get()
                if "error" in reply:
                    done = True
                    raise wire.error_from_wire(reply["error"])
                if reply.get("done"):
                    done = True
                    return
                yield TextDelta(str(reply["t"]))
        finally:
            self.channel.pending.pop(rid, None)
            if not done:
                self.channel.send({"op": "cancel", "id": rid})

    async def call_function(self, name: str, arguments: Mapping[str, Any]) -> Any:
        raise WorkflowUnavailable("Server functions are not available to zoo processors.")

    def function_names(self) -> list[str]:
        return []

    def takes_parameter(self, binding_name: str | None, name: str) -> bool:
        return True  # the server keeps what the binding takes

    async def context_size(self, binding_name: str | None, model_name: str | None) -> int | None:
        return self.context

    async def tokenize(
        self, binding_name: str | None, model_name: str | None, text: str
    ) -> list[int] | None:
        found = await self.channel.call("tokenize", text=text)
        return None if found is None else [int(i) for i in found]

    async def detokenize(
        self, binding_name: str | None, model_name: str | None, tokens: list[int]
    ) -> str | None:
        found = await self.channel.call("detokenize", tokens=tokens)
        return None if found is None else str(found)

    async def generate_media(self, request: GenerationRequest) -> list[Any]:
        found = await self.channel.call("media", req=to_wire(request))
        return [wire.event_from_wire(item) for item in found]

    def data_folder(self) -> Path:
        return self.folder

    async def emit(self, event: Event) -> None:
        """Show ``event`` to the client (waits until the server took it)."""
        await self.channel.call("emit", ev=event_to_wire(event))


class _Forward(logging.Handler):
    """Log records go to the server's log (as one line each)."""

    def __init__(self, channel: _Channel) -> None:
        super().__init__(logging.INFO)
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            text = self.format(record)[:_MAX_LOG]
            self.channel.send(
                {"op": "log", "level": record.levelno, "name": record.name, "t": text}
            )


def apply_limits(limits: Mapping[str, int]) -> None:
    """Lower this process's limits, soft and hard (a process cannot raise them again)."""
    table = {
        "cpu_seconds": resource.RLIMIT_CPU,
        "memory_bytes": resource.RLIMIT_AS,
        "open_files": resource.RLIMIT_NOFILE,
        "file_bytes": resource.RLIMIT_FSIZE,
    }
    for name, which in table.items():
        value = int(limits[name])
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        top = value
        if which == resource.RLIMIT_CPU and (hard == resource.RLIM_INFINITY or value < hard):
            top = value + 1  # SIGXCPU at the soft limit (a clear error), SIGKILL a second on
        resource.setrlimit(which, (value, top))


class _Processor:
    """The processor of one request, built and run in this process."""

    def __init__(self, channel: _Channel, init: dict[str, Any]) -> None:
        from lollms_server.personalities.zoo import Job
        from lollms_server.personalities.zoo.bridge import Bridge
        from lollms_server.personalities.zoo.runtime import Workspace

        self.channel = channel
        self.init = init
        self.personality = Personality.model_validate(init["personality"])
        self.request = _request(init)
        root = Path(init["data_folder"])
        self.workspace = Workspace(root, self.personality.id, init["request_id"])
        self.workspace.open()
        self.port = RemotePort(channel, init.get("context_size"), root)
        self.bridge = Bridge(channel.loop, self.port, self.request, self.personality)
        self.images = [Path(p) for p in init.get("images", [])]
        self.job = Job(self.personality, self.request, self.bridge, self.workspace, self.images)
        self.pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="processor")
        self.processor: Any = None

    async def build(self) -> None:
        from lollms_server.personalities.zoo import build_processor
        from lollms_server.personalities.zoo.runtime import Run, active

        await self.bridge.prepare()
        path = Path(self.init["script"])

        def work() -> Any:
            with active(Run(self.workspace, self.bridge)):
                module = _load(path)
                return build_processor(module, self.job)

        self.processor = await self.channel.loop.run_in_executor(self.pool, work)

    async def run(self) -> None:
        from lollms_server.personalities.zoo import run_processor
        from lollms_server.personalities.zoo.runtime import Run, active

        await self.bridge.attach(self.port.emit)

        def work() -> None:
            with active(Run(self.workspace, self.bridge)):
                run_processor(self.processor, self.job)

        await self.channel.loop.run_in_executor(self.pool, work)


def _request(init: Mapping[str, Any]) -> GenerationRequest:
    """The client's request as the processor sees it (its conversation without media)."""
    sent = wire.request_from_wire(init["request"])
    return GenerationRequest(
        binding_name=init.get("binding_name"),
        model_name=init.get("model_name"),
        messages=sent.messages,
        raw_prompt=sent.raw_prompt,
        params=sent.params,
        extra=sent.extra,
        queue_timeout=init.get("queue_timeout"),
        user_name=init.get("user_name"),
        personality_config=init.get("personality_config") or {},
    )


def _load(path: Path) -> Any:
    from lollms_server.personalities.scripted import describe_failure
    from lollms_server.personalities.zoo import import_processor

    try:
        return import_processor(path)
    except BaseException as exc:  # SystemExit in a script ends nothing but its load
        reason = describe_failure(exc, path)
        logging.getLogger("lollms_server.personalities").warning(
            "the script %s failed to load: %s", path, reason
        )
        raise WorkflowUnavailable(f"The script {path.name} failed to load: {reason}") from None


async def _serve(out_fd: int) -> None:
    loop = asyncio.get_running_loop()
    channel = _Channel(out_fd, loop)
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def read() -> None:
        while line := await reader.readline():
            channel.dispatch(wire.decode(line))
        channel.commands.put_nowait({"op": "exit"})

    reading = asyncio.create_task(read())
    processor: _Processor | None = None
    while (command := await channel.commands.get())["op"] != "exit":
        try:
            if command["op"] == "init":
                processor = _start(channel, command)
                await processor.build()
            elif command["op"] == "run" and processor is not None:
                await processor.run()
            else:
                raise WorkflowFailed(f"unexpected command '{command['op']}'")
            channel.send({"op": "done", "of": command["op"]})
        except BaseException as exc:  # the processor's errors end its request, not this loop
            error = exc if isinstance(exc, LollmsError) else _failure(exc, processor)
            channel.send({"op": "done", "of": command["op"], "error": wire.error_to_wire(error)})
            if command["op"] == "run" or not isinstance(exc, Exception):
                break
    reading.cancel()


def _failure(exc: BaseException, processor: _Processor | None) -> LollmsError:
    from lollms_server.personalities.scripted import describe_failure

    script = Path(processor.init["script"]) if processor is not None else Path("processor.py")
    return WorkflowFailed(describe_failure(exc, script))


def _start(channel: _Channel, init: dict[str, Any]) -> _Processor:
    """Lower the limits, forward the log, hold the process to the policy: then build."""
    from lollms_server.personalities.zoo.confine import Policy, hold_process
    from lollms_server.personalities.zoo.sandbox import install_refusal

    home = Path(init["home"])
    os.chdir(home)  # relative paths lead to the working folder, whoever opens them
    os.environ.update(HOME=str(home), TMPDIR=str(home / ".tmp"))
    tempfile.tempdir = None
    apply_limits(init["limits"])
    root = logging.getLogger()
    root.handlers = [_Forward(channel)]
    root.setLevel(logging.INFO)
    processor = _Processor(channel, init)
    rules = Policy(processor.personality.id, (home,), bool(init.get("network")), install_refusal)
    hold_process(rules, int(init["server_pid"]))
    return processor


def _preload() -> None:
    """Import the compatibility layer while waiting for a request (a spare process)."""
    import lollms_server.personalities.zoo.bridge
    import lollms_server.personalities.zoo.lollms.personality
    import lollms_server.personalities.zoo.runtime  # noqa: F401


def main() -> None:
    out_fd = os.dup(1)
    os.dup2(2, 1)  # what the processor prints must not corrupt the protocol pipe
    sys.dont_write_bytecode = True
    _preload()
    asyncio.run(_serve(out_fd))
    os._exit(0)  # threads a processor left running do not hold the process


if __name__ == "__main__":
    main()
