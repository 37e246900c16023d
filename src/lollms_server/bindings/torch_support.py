"""What the torch-based bindings share: which memory budget a device uses, the default
dtype for it, and giving memory back after an unload. Torch is imported lazily."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import threading
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal

from pydantic import Field
from typing_extensions import TypeVar

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.bindings.types import BindingContext, ModelInfo
from lollms_server.errors import BindingUnavailable, ModelNotFound

__all__ = [
    "LoadedModel",
    "TorchBinding",
    "TorchConfig",
    "budget_of",
    "default_dtype",
    "free_memory",
]

T = TypeVar("T")


@dataclass
class LoadedModel:
    """A loaded network with its tokenizer; the lock serialises calls into it."""

    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


def budget_of(device: str) -> str:
    """The scheduler's budget for a torch device: ``cpu`` (Apple's unified memory is system
    memory), ``gpu:N`` for ``cuda:N``, ``gpu`` for the default GPU."""
    if device in ("cpu", "mps"):
        return "cpu"
    return "gpu:" + device.split(":", 1)[1] if device.startswith("cuda:") else "gpu"


def default_dtype(dtype: str, device: str) -> str:
    """``dtype`` unless it is ``auto``: float32 on CPUs, float16 on GPUs."""
    if dtype != "auto":
        return dtype
    return "float32" if device in ("cpu", "mps") else "float16"


def free_memory() -> None:
    """Collect what an unloaded model left, and return cached GPU blocks to the driver."""
    gc.collect()
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class TorchConfig(BindingConfig):
    """Settings every in-process torch binding has."""

    models: dict[str, str] = Field(
        default_factory=dict, description="name -> model folder or hub id (local cache)."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="'auto': float32 on the CPU, float16 on a GPU."
    )
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1', 'mps'...")
    allow_download: bool = Field(False, description="Let hub ids download when not cached.")


TorchConfigT = TypeVar("TorchConfigT", bound=TorchConfig, covariant=True, default=TorchConfig)


class TorchBinding(Binding[TorchConfigT], Generic[T, TorchConfigT]):
    """Base of the bindings that hold torch models in this process, named in ``models``.

    Subclasses set ``Config`` (a :class:`TorchConfig`), ``what`` (for messages) and
    implement ``_load_sync(source) -> T``, run in a worker thread; loaded objects are kept
    in ``self._loaded``."""

    what: ClassVar[str] = "model"
    needs: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    extra: ClassVar[str] = "transformers"

    def __init__(self, config: TorchConfigT, context: BindingContext) -> None:
        super().__init__(config, context)
        self._loaded: dict[str, T] = {}

    def _source(self, model: str) -> str:
        if model not in self.config.models:
            raise ModelNotFound(model, self.instance_name, self.config.models)
        return self.config.models[model]

    def _dtype_name(self) -> str:
        return default_dtype(self.config.dtype, self.config.device)

    def memory_device(self, model: str) -> str:
        return budget_of(self.config.device)

    async def list_models(self) -> list[ModelInfo]:
        return [await self.model_info(name) for name in self.config.models]

    def _network(self, loaded: T) -> Any:
        """The torch module inside what ``_load_sync`` returned (for its measured size)."""
        return loaded.model  # type: ignore[attr-defined]

    def memory_used(self, model: str) -> int | None:
        loaded = self._loaded.get(model)
        return int(self._network(loaded).get_memory_footprint()) if loaded else None

    async def load(self, model: str) -> None:
        if model in self._loaded:
            return
        source = self._source(model)
        missing = [name for name in self.needs if importlib.util.find_spec(name) is None]
        if missing:
            raise BindingUnavailable(
                f"{', '.join(missing)} not installed: pip install 'lollms_server[{self.extra}]'"
            )
        try:
            self._loaded[model] = await asyncio.to_thread(self._load_sync, source)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BindingUnavailable(
                f"could not load {self.what} '{model}' from '{source}': {exc}"
            ) from exc

    @abstractmethod
    def _load_sync(self, source: str) -> T:
        """Load ``source`` (runs in a worker thread)."""

    async def unload(self, model: str) -> None:
        if self._loaded.pop(model, None) is not None:
            free_memory()

    async def close(self) -> None:
        for model in list(self._loaded):
            await self.unload(model)
