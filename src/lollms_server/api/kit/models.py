"""The one gathering of models over every active binding instance, and what the listings
say of each (generation types, creation time, context length)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lollms_server.bindings.base import Binding
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.types import ModelInfo
from lollms_server.errors import BadRequest, LollmsError
from lollms_server.generation.resolve import well_known_type

__all__ = [
    "ModelFacts",
    "created_at",
    "facts",
    "gather_models",
    "generation_type",
    "model_types",
]


async def gather_models(
    bindings: BindingManager, generation_type: str | None = None
) -> tuple[dict[str, list[ModelInfo]], dict[str, str]]:
    """``(models by instance, error by instance)``, listed concurrently; an instance that
    fails is reported, not fatal. ``generation_type`` keeps the instances that serve it."""
    names = [
        n
        for n in bindings.active_names()
        if generation_type is None or generation_type in bindings.get(n).serves()
    ]
    results = await asyncio.gather(
        *(bindings.get(n).list_models() for n in names), return_exceptions=True
    )
    models: dict[str, list[ModelInfo]] = {}
    errors: dict[str, str] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, LollmsError):
            errors[name] = result.message
        elif isinstance(result, BaseException):
            errors[name] = type(result).__name__
        else:
            models[name] = result
    return models, errors


STARTED = time.time()  # the fallback creation time: when this server started
TYPE_NAMES = {
    "chat": "ttt",
    "completion": "ttt",
    "text": "ttt",
    "llm": "ttt",
    "embedding": "embed",
    "embeddings": "embed",
    "image": "tti",
    "video": "ttv",
    "music": "ttm",
    "speech": "tts",
    "transcription": "stt",
}
"""Friendly names a model listing's ``type`` filter also takes, as generation types."""
GENERATION_TYPES = ("ttt", "tti", "ttv", "ttm", "tts", "stt", "embed")


@dataclass(frozen=True)
class ModelFacts:
    """What a listing says of a model beyond its name."""

    types: list[str]  # the generation types it serves here, main one first
    created: int  # unix seconds: its files' time where known, else the server's start
    context_length: int | None


def model_types(binding: Binding, info: ModelInfo) -> list[str]:
    """The generation types ``info`` serves on ``binding`` (a relay's upstream model with a
    well-known name such as ``text-embedding-3-small``: that name's type)."""
    served = binding.serves()
    known = well_known_type(info.name)
    if known in served and known not in info.modalities:
        return [known]
    return [m for m in info.modalities if m in served] or sorted(served)


def created_at(binding: Binding, info: ModelInfo) -> int:
    """When the model's files were last written (its folder or file, from ``details``),
    or a time the binding reports; else when this server started."""
    for key in ("created", "modified_at"):
        stamp = _stamp(info.details.get(key))
        if stamp is not None:
            return stamp
    for key in ("path", "source", "file"):
        value = info.details.get(key)
        if isinstance(value, str) and value:
            path = Path(value).expanduser()
            for candidate in (path, binding.context.models_path / path):
                with contextlib.suppress(OSError, ValueError):
                    return int(candidate.stat().st_mtime)
    return int(STARTED)


def _stamp(value: Any) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    if isinstance(value, datetime):
        return int(value.timestamp())
    return None


def facts(binding: Binding, info: ModelInfo) -> ModelFacts:
    """Types, creation time and context length of a listed model."""
    return ModelFacts(model_types(binding, info), created_at(binding, info), info.context_size)


def generation_type(name: str | None, param: str = "type") -> str | None:
    """A listing filter's type (a generation type or a friendly name); 400 naming it else."""
    if name is None:
        return None
    wanted = TYPE_NAMES.get(name.lower(), name.lower())
    if wanted not in GENERATION_TYPES:
        raise BadRequest(
            f"Unknown model type '{name}'; use one of {', '.join(GENERATION_TYPES)} "
            f"(or {', '.join(TYPE_NAMES)}).",
            param=param,
        )
    return wanted
