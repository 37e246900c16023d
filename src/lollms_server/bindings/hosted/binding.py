"""``HostedBinding``: a binding wrapper that runs each loaded model in its own host process.

Every hook of :class:`~lollms_server.bindings.base.Binding` is handled here, explicitly, in
one of two ways (a test checks that none is left to the base class's default):

* **local** — work that only reads files or settings (listing models, estimates, request
  checks, which types it serves) runs on an in-server instance of the wrapped class;
* **hosted** — work that needs the loaded model (load, generate, embed, tokenize) runs in the
  host process, through :class:`~lollms_server.bindings.hosted.process.HostProcess`.

Unloading ends the process, so memory really returns to the system. A host that dies on its
own fails its requests at once (503 ``model_host_crashed``) and tells the server through
``BindingContext.model_lost``: the scheduler marks the model unloaded and releases its memory,
and the next request loads it again in a new host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.events import Event
from lollms_server.bindings.hosted import process, wire
from lollms_server.bindings.hosted.process import HostProcess
from lollms_server.bindings.registry import PLUGIN_NAMESPACE
from lollms_server.bindings.types import (
    BindingContext,
    BindingRequest,
    EmbeddingResult,
    ModelInfo,
)

__all__ = ["HostedBinding", "hosted"]

logger = logging.getLogger(__name__)


class HostedBinding(Binding):
    """A binding whose models each run in a host process (see the module docstring)."""

    inner: ClassVar[type[Binding]]

    def __init__(self, config: BindingConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self.local = self.inner(config, context)  # file-only work stays in the server
        self.hosts: dict[str, HostProcess] = {}
        self._measured: dict[str, int] = {}  # bytes the host measured after each load
        self._info: dict[str, ModelInfo] = {}  # the host's description once it has loaded

    # -- local: answered by the in-server instance -----------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        """The wrapped binding's models; a loaded one as its host describes it."""
        models = await self.local.list_models()
        return [self._described(m) for m in models]

    async def model_info(self, model: str) -> ModelInfo:
        """The wrapped binding's description (its host's once loaded), with the host's pid."""
        info = self._described(await self.local.model_info(model))
        details = {**info.details, "isolation": "process", "host_pid": self.host_pid(model)}
        return info.model_copy(update={"details": details})

    def memory_estimate(self, model: str) -> int | None:
        """As the wrapped binding estimates it."""
        return self.local.memory_estimate(model)

    def memory_device(self, model: str) -> str:
        """As the wrapped binding places it."""
        return self.local.memory_device(model)

    def memory_used(self, model: str) -> int | None:
        """What the host measured after loading."""
        return self._measured.get(model)

    def max_concurrency(self, model: str) -> int:
        """As the wrapped binding batches."""
        return self.local.max_concurrency(model)

    def check_request(self, request: BindingRequest) -> None:
        """As the wrapped binding checks."""
        self.local.check_request(request)

    def serves(self) -> frozenset[str]:
        """As the wrapped instance's config narrows its modalities."""
        return self.local.serves()

    def accepts_parameter(self, name: str) -> bool:
        """As the wrapped binding accepts."""
        return self.local.accepts_parameter(name)

    def uses_chat_template(self, model: str) -> bool:
        """As the wrapped binding renders conversations."""
        return self.local.uses_chat_template(model)

    async def voices(self, model: str) -> list[str] | None:
        """As the wrapped binding names its voices (read from files)."""
        return await self.local.voices(model)

    # -- hosted: run in the model's host process --------------------------------------------
    def host_pid(self, model: str) -> int | None:
        """The pid of the host running ``model`` (None when not loaded)."""
        host = self.hosts.get(model)
        return host.pid if host else None

    async def load(self, model: str) -> None:
        """Start a host process and load ``model`` in it."""
        host = self._new_host(model)
        try:
            await host.start(self._init_message())
            engine_model = self._engine_model(model)
            measured = await host.call("load", model=engine_model)
            info = ModelInfo.model_validate(await host.call("model_info", model=engine_model))
        except BaseException:
            await host.stop()
            raise
        if isinstance(measured, int) and measured > 0:
            self._measured[model] = measured
        self._info[model] = info
        old = self.hosts.pop(model, None)
        if old is not None:  # a dead host's leftovers
            await old.stop()
        self.hosts[model] = host
        logger.info("Model host for '%s' running as pid %s", host.label, host.pid)

    async def unload(self, model: str) -> None:
        """End the model's host (asking it to unload first, within a grace period)."""
        host = self.hosts.pop(model, None)
        self._forget(model)
        if host is None:
            return
        if host.dead is None:
            # A host that hangs (not dead) must not hold the unload, and its memory, forever:
            # after the grace, stop() kills it.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    host.call("unload", model=self._engine_model(model)), process.STOP_SECONDS
                )
        await host.stop()

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        """Stream the host's events; closing early cancels the generation in the host."""
        stream = self._host(request.model).stream(request, self.config.cancel_grace)
        try:
            async for event in stream:
                yield event
        finally:
            await stream.aclose()  # sends the cancel at once

    async def embed(self, model: str, texts: list[str]) -> EmbeddingResult:
        """Vectors computed in the host."""
        result = await self._host(model).call("embed", model=model, texts=texts)
        return wire.embedding_from_wire(result)

    async def tokenize(self, model: str, text: str) -> list[int]:
        """Tokens from the host's tokenizer."""
        return list(await self._host(model).call("tokenize", model=model, text=text))

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        """Text from the host's tokenizer."""
        return str(await self._host(model).call("detokenize", model=model, tokens=tokens))

    async def close(self) -> None:
        """End every host, then release what the local instance holds."""
        for model in list(self.hosts):
            await self.unload(model)
        await self.local.close()

    # -- internals --------------------------------------------------------------------------
    def _engine_model(self, model: str) -> str:
        """The wrapped binding's name for ``model`` (a cluster names replicas apart)."""
        return model

    def _new_host(self, model: str) -> HostProcess:
        """The host that will run ``model``: a child process here (a Ray actor in a cluster)."""
        return HostProcess(f"{self.instance_name}/{model}", self._on_death(model))

    def _described(self, info: ModelInfo) -> ModelInfo:
        if info.name not in self.hosts:
            return info.model_copy(update={"loaded": False})
        return self._info.get(info.name, info).model_copy(update={"loaded": True})

    def _forget(self, model: str) -> None:
        self._measured.pop(model, None)
        self._info.pop(model, None)

    def _host(self, model: str) -> HostProcess:
        host = self.hosts.get(model)
        if host is None:
            crashed = HostProcess(f"{self.instance_name}/{model}")
            crashed.dead = "not running"
            raise crashed.crashed()
        return host

    def _on_death(self, model: str) -> Callable[[str], None]:
        def died(reason: str) -> None:
            host = self.hosts.get(model)
            if host is None or host.dead is None:
                return  # not (or no longer) the model's current host
            del self.hosts[model]
            self._forget(model)
            logger.error("The model host for '%s/%s' died (%s)", self.instance_name, model, reason)
            self.context.model_lost(model, reason)

        return died

    def _init_message(self) -> dict[str, Any]:
        cls = self.inner
        message: dict[str, Any] = {
            "module": cls.__module__,
            "qualname": cls.__qualname__,
            "config": wire.config_to_wire(self.config),
            "instance": self.instance_name,
            "models_path": str(self.context.models_path),
        }
        if cls.__module__.startswith(PLUGIN_NAMESPACE + "."):
            message["file"] = str(Path(sys.modules[cls.__module__].__file__ or ""))
        return message


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
