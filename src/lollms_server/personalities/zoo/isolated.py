"""The server's side of a zoo processor's own process (see :mod:`.child`).

The processor is third-party code: it runs in a child process started for its request, in
its personality's working folder, without the server's secrets in its environment, under
CPU, memory, open-file and file-size limits and the confinement of :mod:`.confine`. What
it asks of the server arrives here as calls, and is decided here, never by the child:

- a generation runs on the request's binding and model, with the processor's sampling held
  to the client's limits (``bound_sampling``) and only the engine options the binding takes;
  its token use is counted in the request's ``usage``;
- media go through the server's defaults for their type (image, video, music, speech);
- events shown to the client are text and steps only;
- its log records reach the server's log, scrubbed of URL credentials.

When the request ends (answer, error, client gone, time limit), the process is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lollms_server.bindings.events import TextDelta, Usage
from lollms_server.bindings.hosted import wire
from lollms_server.bindings.types import BindingRequest, SamplingParams
from lollms_server.errors import BadRequest, LollmsError, WorkflowFailed, WorkflowUnavailable
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.workflow import Emit
from lollms_server.personalities.model import Personality
from lollms_server.personalities.prompting import bound_sampling
from lollms_server.personalities.zoo.bridge import EXTENSIONS
from lollms_server.personalities.zoo.child import event_from_wire, to_wire
from lollms_server.personalities.zoo.runtime import Workspace
from lollms_server.personalities.zoo.sandbox import is_secret
from lollms_server.security.redact import scrub

if TYPE_CHECKING:
    from lollms_server.generation.port import GenerationPort

__all__ = [
    "ProcessorPool",
    "ProcessorProcess",
    "ZooRunner",
    "child_environment",
    "save_images",
]

logger = logging.getLogger("lollms_server.personalities")
CHILD_MODULE = "lollms_server.personalities.zoo.child"
_MEDIA_TYPES = {"tti", "ttv", "ttm", "tts"}
_STOP_SECONDS = 2.0
_MAX_CALLS = 64  # calls of one processor the server runs at once
_MAX_LOG_LINES = 100  # log lines of one processor per second (the rest counted, dropped)
_LINE_LIMIT = 64 << 20  # the longest message a processor may send (a generation with images)


# A server has no screen and no sound card: libraries that open one (pygame's mixer at
# import, matplotlib's default backend) get their headless drivers, not an error. Sound a
# processor plays goes nowhere; what it draws can still be saved to a file.
HEADLESS = {"SDL_AUDIODRIVER": "dummy", "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg"}


def child_environment() -> dict[str, str]:
    """The server's environment less its secrets (the child sets its home at ``init``),
    with the headless drivers unless the operator chose others."""
    kept = {k: v for k, v in os.environ.items() if not is_secret(k, v)}
    return {**HEADLESS, **kept}


class ProcessorPool:
    """Processes for processors: started ahead (``spares`` of them, once the first is asked
    for), so that a request does not wait for Python to start and import the layer."""

    def __init__(self, spares: int, folder: Path) -> None:
        self.spares = spares
        self.folder = folder  # where idle processes wait (the data folder)
        self._ready: list[asyncio.subprocess.Process] = []
        self._filling: asyncio.Task[None] | None = None
        self._closed = False

    async def take(self) -> asyncio.subprocess.Process:
        """A started process, waiting for its ``init``."""
        while self._ready:
            proc = self._ready.pop()
            if proc.returncode is None:
                break
        else:
            proc = await self._spawn()
        if self.spares and not self._closed and (self._filling is None or self._filling.done()):
            self._filling = asyncio.create_task(self._fill())
        return proc

    async def _fill(self) -> None:
        while len(self._ready) < self.spares and not self._closed:
            try:
                self._ready.append(await self._spawn())
            except OSError as exc:
                logger.warning("could not start a spare processor process: %s", exc)
                return

    async def _spawn(self) -> asyncio.subprocess.Process:
        self.folder.mkdir(parents=True, exist_ok=True)
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            CHILD_MODULE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=self.folder,
            env=child_environment(),
            limit=_LINE_LIMIT,
        )

    async def close(self) -> None:
        """Stop the spare processes (the server is stopping)."""
        self._closed = True
        if self._filling is not None:
            self._filling.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._filling
        ready, self._ready = self._ready, []
        for proc in ready:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _exit_reason(code: int, limits: Mapping[str, int]) -> str:
    if code >= 0:
        return f"it exited with status {code}"
    if -code == signal.SIGXCPU:
        return f"it used its {limits['cpu_seconds']} s of CPU time"
    if -code == signal.SIGXFSZ:
        return f"it wrote a file beyond {limits['file_bytes'] >> 20} MB"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"it was killed ({name})"


class ProcessorProcess:
    """One processor's process for one request: start it, serve its calls, stop it."""

    def __init__(
        self,
        personality: Personality,
        request: GenerationRequest,
        service: GenerationPort,
        limits: Mapping[str, int],
        pool: ProcessorPool,
    ) -> None:
        self.personality = personality
        self.request = request
        self.service = service
        self.limits = dict(limits)
        self.pool = pool
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._done: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._emit: Emit | None = None
        self._usage: list[Usage] = []  # counted before a client was attached
        self._write = asyncio.Lock()
        self._replies: set[asyncio.Task[None]] = set()  # refusals being sent
        self._log_window, self._log_lines, self._log_dropped = 0.0, 0, 0
        self._ended: dict[str, Any] | None = None  # the error of a process that ended

    # -- life --------------------------------------------------------------------------------
    async def start(self, init: dict[str, Any]) -> None:
        """Take a process and build the processor in it (its errors raised here)."""
        try:
            self.proc = await self.pool.take()
        except OSError as exc:
            raise WorkflowUnavailable(
                f"The processor's process could not be started: {exc.strerror}."
            ) from None
        self._reader = asyncio.create_task(self._read())
        await self._command("init", {**init, "limits": self.limits, "server_pid": os.getpid()})

    async def run(self, emit: Emit) -> None:
        """Run the processor's workflow, its events shown through ``emit``."""
        self._emit = emit
        pending, self._usage = self._usage, []
        for usage in pending:
            await emit(usage)
        await self._command("run", {})

    def kill(self) -> None:
        """Kill the process now (the request is over)."""
        for task in self._tasks.values():
            task.cancel()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()

    async def stop(self) -> None:
        """Kill the process and wait for it."""
        self._report_dropped()
        self.kill()
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), _STOP_SECONDS)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _command(self, op: str, fields: dict[str, Any]) -> None:
        future = asyncio.get_running_loop().create_future()
        self._done[op] = future
        if self._ended is not None:  # it died before this command
            future.set_result(self._ended)
        await self._send({"op": op, **fields})
        reply = await future
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])

    # -- the pipe ----------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        async with self._write:
            if self.proc.returncode is not None or self.proc.stdin.is_closing():
                return  # a dead child: _read reports it
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(wire.encode(message))
                await self.proc.stdin.drain()

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                self._dispatch(wire.decode(line))
        except (ValueError, KeyError, TypeError) as exc:  # a garbled pipe ends the processor
            logger.error("processor of personality '%s' sent %s", self.personality.id, exc)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        reason = _exit_reason(await self.proc.wait(), self.limits)
        self._ended = {
            "error": wire.error_to_wire(
                WorkflowFailed(
                    f"The processor of personality '{self.personality.id}' stopped: {reason}."
                )
            )
        }
        for future in self._done.values():
            if not future.done():
                future.set_result(self._ended)

    def _dispatch(self, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "done":
            future = self._done.get(str(message["of"]))
            if future is not None and not future.done():
                future.set_result(message)
        elif op == "log":
            self._log(message)
        elif op == "cancel":
            task = self._tasks.get(message["id"])
            if task is not None:
                task.cancel()
        elif len(self._tasks) >= _MAX_CALLS:  # its calls run as tasks here: bounded
            error = WorkflowFailed(f"more than {_MAX_CALLS} calls to the server at once")
            self._reply_soon({"id": int(message["id"]), "error": wire.error_to_wire(error)})
        else:
            rid = int(message["id"])
            self._tasks[rid] = asyncio.create_task(self._answer(rid, op, message))

    def _reply_soon(self, message: dict[str, Any]) -> None:
        task = asyncio.create_task(self._send(message))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    def _report_dropped(self) -> None:
        if self._log_dropped:
            logger.warning(
                "personality '%s': %d log line(s) of its processor dropped (over %d a second)",
                self.personality.id,
                self._log_dropped,
                _MAX_LOG_LINES,
            )
            self._log_dropped = 0

    def _log(self, message: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if now - self._log_window >= 1.0:
            self._report_dropped()
            self._log_window, self._log_lines = now, 0
        self._log_lines += 1
        if self._log_lines > _MAX_LOG_LINES:
            self._log_dropped += 1
            return
        name = str(message.get("name") or "")
        if not name.startswith("lollms_server."):
            name = "lollms_server.personalities.processor"
        level = message.get("level")
        text = scrub(str(message.get("t", "")))
        logging.getLogger(name).log(level if isinstance(level, int) else logging.INFO, "%s", text)

    # -- the processor's calls ---------------------------------------------------------------
    async def _answer(self, rid: int, op: str, message: Mapping[str, Any]) -> None:
        handlers: dict[str, Callable[[int, Mapping[str, Any]], Awaitable[Any]]] = {
            "emit": self._on_emit,
            "tokenize": self._on_tokenize,
            "detokenize": self._on_detokenize,
            "media": self._on_media,
            "generate": self._on_generate,
        }
        try:
            handler = handlers.get(op)
            if handler is None:
                raise BadRequest(f"unknown processor call '{op}'")
            result = await handler(rid, message)
            reply = {"done": True} if op == "generate" else {"ok": True, "result": result}
            await self._send({"id": rid, **reply})
        except asyncio.CancelledError:
            await self._send({"id": rid, "done": True})
        except Exception as exc:
            error = exc if isinstance(exc, LollmsError) else WorkflowFailed(f"{op}: {exc}")
            await self._send({"id": rid, "error": wire.error_to_wire(error)})
        finally:
            self._tasks.pop(rid, None)

    async def _on_emit(self, rid: int, message: Mapping[str, Any]) -> None:
        event = event_from_wire(message["ev"])
        if self._emit is not None:  # a constructor has no client to show it to
            await self._emit(event)

    async def _on_tokenize(self, rid: int, message: Mapping[str, Any]) -> list[int] | None:
        request = self.request
        return await self.service.tokenize(
            request.binding_name, request.model_name, str(message["text"])
        )

    async def _on_detokenize(self, rid: int, message: Mapping[str, Any]) -> str | None:
        request = self.request
        tokens = [int(t) for t in message["tokens"]]
        return await self.service.detokenize(request.binding_name, request.model_name, tokens)

    async def _on_media(self, rid: int, message: Mapping[str, Any]) -> list[dict[str, Any]]:
        asked = wire.request_from_wire(message["req"])
        if asked.generation_type not in _MEDIA_TYPES:
            raise BadRequest(f"'{asked.generation_type}' is not a media generation type")
        request = GenerationRequest(
            generation_type=asked.generation_type,
            messages=asked.messages,
            params=SamplingParams(seed=asked.params.seed),
            media=asked.media,
            queue_timeout=self.request.queue_timeout,
        )
        outputs = await self.service.generate_media(request)
        return [wire.event_to_wire(output) for output in outputs]

    async def _on_generate(self, rid: int, message: Mapping[str, Any]) -> None:
        request = self._generation(wire.request_from_wire(message["req"]))
        async with contextlib.aclosing(self.service.events(request)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    await self._send({"id": rid, "t": event.text})
                elif isinstance(event, Usage):  # counted in the request's usage
                    if self._emit is None:
                        self._usage.append(event)
                    else:
                        await self._emit(event)

    def _generation(self, asked: BindingRequest) -> GenerationRequest:
        """The generation a processor asked for, on the request's model and within the
        client's limits, with the engine options the binding takes."""
        name = self.request.binding_name
        extra = {k: v for k, v in asked.extra.items() if self.service.takes_parameter(name, k)}
        params = dataclasses.replace(asked.params, stop=tuple(str(s) for s in asked.params.stop))
        return dataclasses.replace(
            self.request,
            messages=asked.messages,
            raw_prompt=None,
            params=bound_sampling(params, self.request.params),
            extra=extra,
            personality=None,
            functions=(),
            tools=(),
            tool_choice=None,
            json_schema=None,
        )


class ZooRunner:
    """The workflow body of one request to a zoo-style scripted personality, run in a
    process of its own (:mod:`.isolated`).

    :meth:`prepare` starts that process, which imports and builds the processor (and applies
    the request's ``personality_config``) before any response starts, so that a script that
    cannot load is a 503 and bad settings a 400, not a broken stream.
    """

    def __init__(self, process: ProcessorProcess) -> None:
        personality = process.personality
        assert personality.script is not None
        self.personality = personality
        self.request = process.request
        self.service = process.service
        self.script = personality.script.path
        self.request_id = f"request-{uuid.uuid4().hex[:16]}"
        self.workspace = Workspace(self.service.data_folder(), personality.id, self.request_id)
        self.process = process
        self._prepared = False

    async def prepare(self) -> None:
        """Open the personality's folders, start its process, build the processor there."""
        try:
            try:
                self.workspace.open()
            except OSError as exc:
                logger.error("personality data folder %s: %s", self.workspace.home, exc)
                raise WorkflowUnavailable(
                    f"The personalities' data folder cannot be used: {exc.strerror}."
                ) from None
            images = save_images(self.request, self.workspace.discussion)
            for image in images:
                self.workspace.add_input(image)
            context = await self.service.context_size(
                self.request.binding_name, self.request.model_name
            )
            (self.workspace.home / ".tmp").mkdir(exist_ok=True)
            await self.process.start(self._init(images, context))
            self._prepared = True
        except BaseException:
            await self.close()
            raise

    def _init(self, images: list[Path], context: int | None) -> dict[str, Any]:
        request = self.request
        plain = tuple(dataclasses.replace(m, media=()) for m in request.messages)
        return {
            "personality": self.personality.model_dump(),
            "script": str(self.script),
            "data_folder": str(self.workspace.root),
            "home": str(self.workspace.home),
            "request_id": self.request_id,
            "request": to_wire(dataclasses.replace(request, messages=plain)),
            "binding_name": request.binding_name,
            "model_name": request.model_name,
            "queue_timeout": request.queue_timeout,
            "user_name": request.user_name,
            "personality_config": dict(request.personality_config),
            "images": [str(i) for i in images],
            "context_size": context,
            "network": self.personality.raw.get("network") is True,  # "network: true"
        }

    async def __call__(self, emit: Emit) -> None:
        try:
            if not self._prepared:
                await self.prepare()
            await self.process.run(emit)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the processor's process and remove the client's input files."""
        await self.process.stop()
        self.workspace.close()

    def kill(self) -> None:
        """:meth:`close` at once, from synchronous code (the request's run is closed, its
        body run or not)."""
        self.process.kill()
        self.workspace.close()


def save_images(request: GenerationRequest, folder: Path) -> list[Path]:
    """The request's images as files in the discussion folder (for the processor)."""
    paths = []
    parts = (m for msg in request.messages for m in msg.media if m.kind == "image")
    for index, part in enumerate(parts):
        path = folder / f"image_{index}{EXTENSIONS.get(part.mime_type, '.png')}"
        path.write_bytes(part.data)
        paths.append(path)
    return paths
