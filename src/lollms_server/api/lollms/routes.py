"""What ``lollms-client``'s ``lollms`` binding calls beside ``/v1``: ``/lollms/v1/...``
(capabilities, personalities, models by type, tokenizer and context size)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from lollms_server.api.deps import Bindings, Generation, require_api_key
from lollms_server.api.kit.models import gather_models
from lollms_server.api.lean import LeanRoute
from lollms_server.errors import BadRequest

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(
    dependencies=[Depends(require_api_key)], tags=["lollms-client"], route_class=LeanRoute
)
_BINDING_TYPES = {
    "llm": "ttt",
    "tti": "tti",
    "ttv": "ttv",
    "ttm": "ttm",
    "tts": "tts",
    "stt": "stt",
}


class _ModelBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None


class _TokenizeBody(_ModelBody):
    text: str


class _DetokenizeBody(_ModelBody):
    tokens: list[int]


@router.get("/lollms/v1/capabilities")
async def capabilities(bindings: Bindings) -> dict[str, Any]:
    active: dict[str, list[str]] = {}
    for name in bindings.active_names():
        for gen_type in bindings.get(name).serves():
            kind = next((k for k, v in _BINDING_TYPES.items() if v == gen_type), gen_type)
            active.setdefault(kind, []).append(name)
    caps = sorted(active) + ["tokenize", "detokenize", "context_size"]
    return {"capabilities": caps, "active_bindings": active}


@router.get("/lollms/v1/personalities")
async def personalities(service: Generation) -> list[dict[str, Any]]:
    """Every personality the server loaded (lollms-client's ``listMountedPersonalities``)."""
    return [p.summary() for p in service.personalities.all()]


@router.get("/lollms/v1/{binding_type}/models")
async def models_by_type(
    binding_type: str, bindings: Bindings, binding_alias: str | None = None
) -> dict[str, Any]:
    """Models of the instances serving ``binding_type`` (only ``binding_alias`` if given)."""
    gen_type = _BINDING_TYPES.get(binding_type)
    if gen_type is None:
        raise BadRequest(
            f"Unknown binding type '{binding_type}'; known: {', '.join(_BINDING_TYPES)}.",
            param="binding_type",
        )
    models, _ = await gather_models(bindings, gen_type)
    data = [
        {
            "model_name": f"{name}/{m.name}",
            "binding_alias": name,
            "context_size": m.context_size,
            "size": m.size_bytes,
        }
        for name, infos in models.items()
        if binding_alias in (None, name)
        for m in infos
    ]
    return {"data": data}


@router.post("/lollms/v1/tokenize")
async def tokenize(body: _TokenizeBody, service: Generation) -> dict[str, Any]:
    instance, model = await service.find_model(body.model or "default")
    async with service.loaded_model(instance, model) as (binding, name):
        tokens = await binding.tokenize(name, body.text)
    return {"tokens": tokens, "count": len(tokens)}


@router.post("/lollms/v1/detokenize")
async def detokenize(body: _DetokenizeBody, service: Generation) -> dict[str, Any]:
    instance, model = await service.find_model(body.model or "default")
    async with service.loaded_model(instance, model) as (binding, name):
        text = await binding.detokenize(name, body.tokens)
    return {"text": text}


@router.post("/lollms/v1/context_size")
async def context_size(body: _ModelBody, service: Generation) -> dict[str, Any]:
    instance, model = await service.find_model(body.model or "default")
    info = await service.bindings.get(instance).model_info(model)
    return {"context_size": info.context_size}
