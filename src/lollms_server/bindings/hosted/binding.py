"""Process isolation: run each loaded model of a binding instance in its own host process.

``isolation = "process"`` in a ``[bindings.<instance>]`` table wraps the binding in a
:class:`HostedBinding`: listing models and estimates still run in the server (they only read
files), while ``load`` starts a host process (``resources/host.py``) that loads the model,
and generation streams from it. Unloading ends the process, so the memory really returns to
the system; a crash in native code ends only that process: its requests fail at once with a
503 and the next request starts a new host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.events import Event
from lollms_server.bindings.registry import _PLUGIN_NAMESPACE
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.errors import ModelHostCrashed
from lollms_server.resources import wire

__all__ = ["HostedBinding", "hosted"]

logger = logging.getLogger(__name__)
_STOP_SECONDS = 10.0


class _HostProcess:
    """One child process and the multiplexing of its requests by id."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self.ids = itertools.count(1)
        self.dead: str | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self, init: dict[str, Any]) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lollms_server.resources.host",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 30,
        )
        self._reader = asyncio.create_task(self._read())
        await self.call("init", **init)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            while line := await self.proc.stdout.readline():
                message = wire.decode(line)
                queue = self.pending.get(message.get("id", -1))
                if queue is not None:
                    queue.put_nowait(message)
        except Exception as exc:  # a garbled pipe is as fatal as a dead process
            logger.error("Model host %s sent an unreadable message: %s", self.label, exc)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        code = await self.proc.wait()
        reason = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        with contextlib.suppress(ValueError):
            reason = f"killed by {signal.Signals(-code).name}" if code < 0 else reason
        self.dead = reason
        for queue in self.pending.values():
            queue.put_nowait({"dead": reason})

    async def _send(self, message: dict[str, Any]) -> None:
        if self.dead is not None or self.proc is None or self.proc.stdin is None:
            raise self._crashed()
        self.proc.stdin.write(wire.encode(message))
        try:
            await self.proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise self._crashed() from None

    def _crashed(self) -> ModelHostCrashed:
        return ModelHostCrashed(
            f"The model host for '{self.label}' stopped ({self.dead or 'not running'}); "
            "this request failed and the next one starts a new host."
        )

    async def call(self, op: str, **fields: Any) -> Any:
        rid = next(self.ids)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending[rid] = queue
        try:
            await self._send({"op": op, "id": rid, **fields})
            reply = await queue.get()
        finally:
            self.pending.pop(rid, None)
        if "dead" in reply:
            raise self._crashed()
        if "error" in reply:
            raise wire.error_from_wire(reply["error"])
        return reply.get("result")

    async def stream(self, request: BindingRequest) -> AsyncIterator[Event]:
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
                elif message.get("done"):
                    finished = True
                    return
                elif "error" in message:
                    finished = True
                    raise wire.error_from_wire(message["error"])
                else:
                    finished = True
                    raise self._crashed()
        finally:
            self.pending.pop(rid, None)
            if not finished and self.dead is None:
                with contextlib.suppress(ModelHostCrashed):
                    await self._send({"op": "cancel", "id": rid})  # client left: stop the engine

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the host exits when its stdin closes
        try:
            await asyncio.wait_for(proc.wait(), _STOP_SECONDS)
        except asyncio.TimeoutError:
            logger.warning(
                "Model host %s did not exit in %.0f s: killing it", self.label, _STOP_SECONDS
            )
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader


class HostedBinding(Binding):
    """A binding whose models each run in a host process (see the module docstring)."""

    inner: ClassVar[type[Binding]]

    def __init__(self, config: BindingConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self.local = self.inner(config, context)  # file-only work stays in the server
        self.hosts: dict[str, _HostProcess] = {}
        self._restarts: dict[str, asyncio.Lock] = {}
        self._measured: dict[str, int] = {}  # bytes the host measured after each load

    def _init_message(self) -> dict[str, Any]:
        cls = self.inner
        message: dict[str, Any] = {
            "module": cls.__module__,
            "qualname": cls.__qualname__,
            "config": wire.config_to_wire(self.config),
            "instance": self.instance_name,
            "models_path": str(self.context.models_path),
        }
        if cls.__module__.startswith(_PLUGIN_NAMESPACE + "."):
            message["file"] = str(Path(sys.modules[cls.__module__].__file__ or ""))
        return message

    def host_pid(self, model: str) -> int | None:
        host = self.hosts.get(model)
        return host.pid if host else None

    async def list_models(self) -> list[ModelInfo]:
        models = await self.local.list_models()
        return [m.model_copy(update={"loaded": m.name in self.hosts}) for m in models]

    async def model_info(self, model: str) -> ModelInfo:
        info = await self.local.model_info(model)
        return info.model_copy(
            update={
                "loaded": model in self.hosts,
                "details": {
                    **info.details,
                    "isolation": "process",
                    "host_pid": self.host_pid(model),
                },
            }
        )

    def memory_estimate(self, model: str) -> int | None:
        return self.local.memory_estimate(model)

    def memory_device(self, model: str) -> str:
        return self.local.memory_device(model)

    def memory_used(self, model: str) -> int | None:
        return self._measured.get(model)

    def max_concurrency(self, model: str) -> int:
        return self.local.max_concurrency(model)

    def check_request(self, request: BindingRequest) -> None:
        self.local.check_request(request)

    async def load(self, model: str) -> None:
        host = _HostProcess(f"{self.instance_name}/{model}")
        try:
            await host.start(self._init_message())
            measured = await host.call("load", model=model)
        except BaseException:
            await host.stop()
            raise
        if isinstance(measured, int) and measured > 0:
            self._measured[model] = measured
        self.hosts[model] = host
        logger.info("Model host for '%s' running as pid %s", host.label, host.pid)

    async def unload(self, model: str) -> None:
        host = self.hosts.pop(model, None)
        if host is None:
            return
        self._measured.pop(model, None)
        if host.dead is None:
            # A host that hangs (not dead) must not hold the unload, and its memory, forever:
            # after the grace, stop() kills it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(host.call("unload", model=model), _STOP_SECONDS)
        await host.stop()

    async def _live_host(self, model: str) -> _HostProcess:
        host = self.hosts.get(model)
        if host is not None and host.dead is None:
            return host
        async with self._restarts.setdefault(model, asyncio.Lock()):
            host = self.hosts.get(model)
            if host is None or host.dead is not None:
                logger.warning(
                    "Restarting the model host for '%s/%s' (%s)",
                    self.instance_name,
                    model,
                    host.dead if host else "not running",
                )
                self.hosts.pop(model, None)
                await self.load(model)
            return self.hosts[model]

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        host = await self._live_host(request.model)
        stream = host.stream(request)
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # sends the cancel at once

    async def tokenize(self, model: str, text: str) -> list[int]:
        result = await (await self._live_host(model)).call("tokenize", model=model, text=text)
        return list(result)

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        host = await self._live_host(model)
        return str(await host.call("detokenize", model=model, tokens=tokens))

    async def close(self) -> None:
        for model in list(self.hosts):
            await self.unload(model)


def hosted(cls: type[Binding]) -> type[HostedBinding]:
    """The process-isolated variant of binding class ``cls``."""
    return type(
        f"Hosted{cls.__name__}",
        (HostedBinding,),
        {
            "inner": cls,
            "name": cls.name,
            "description": cls.description,
            "modalities": cls.modalities,
            "capabilities": cls.capabilities,
            "Config": cls.Config,
        },
    )
