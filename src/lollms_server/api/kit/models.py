"""The one gathering of models over every active binding instance."""

from __future__ import annotations

import asyncio

from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.types import ModelInfo
from lollms_server.errors import LollmsError

__all__ = ["gather_models"]


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
