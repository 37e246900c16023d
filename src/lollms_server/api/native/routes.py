"""Native ``/api/v1`` routes: thin wrappers over the services."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.deps import Bindings, Generation, Registry, require_api_key
from lollms_server.api.disconnect import (
    cancel_on_disconnect,
    collect_run,
    first_ready,
    start_run,
    start_stream,
)
from lollms_server.api.kit.models import gather_models
from lollms_server.api.lean import LeanRoute
from lollms_server.api.native import translate
from lollms_server.api.native.schemas import (
    CountTokensResponse,
    DetokenizeRequest,
    DetokenizeResponse,
    GenerateRequest,
    GenerateResponse,
    ModelsResponse,
    TokenizeRequest,
    TokenizeResponse,
)
from lollms_server.api.responses import JSONResponse
from lollms_server.api.streaming import sse_response
from lollms_server.bindings.types import ModelInfo

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_api_key)],
    tags=["native"],
    route_class=LeanRoute,
)


@router.get("/list_bindings")
async def list_bindings(registry: Registry) -> dict[str, Any]:
    """Every binding type found (entry points and the bindings folder), with its errors."""
    out = []
    for source in registry.all():
        item: dict[str, Any] = {"type": source.name, "source": source.origin}
        if source.cls is None:
            item.update(status="error", error=source.error)
        else:
            cls = source.cls
            caps = cls.capabilities
            item.update(
                status="ok",
                description=cls.description,
                modalities=sorted(cls.modalities),
                capabilities={k: getattr(caps, k) for k in caps.__slots__},
                config_schema=cls.Config.model_json_schema(),
            )
        out.append(item)
    return {"bindings": out}


@router.get("/list_active_bindings")
async def list_active_bindings(bindings: Bindings) -> dict[str, Any]:
    """Configured binding instances, secrets redacted."""
    return {"bindings": {name: bindings.describe(name) for name in bindings.names()}}


@router.get("/list_models", response_model=ModelsResponse)
async def list_models(bindings: Bindings) -> ModelsResponse:
    """Models of every active instance; an instance that fails is reported in ``errors``."""
    models, errors = await gather_models(bindings)
    return ModelsResponse(models=models, errors=errors)


@router.get("/list_available_models/{binding_name}")
async def list_available_models(binding_name: str, bindings: Bindings) -> dict[str, Any]:
    models = await bindings.get(binding_name).list_models()
    return {"binding_name": binding_name, "models": [m.model_dump() for m in models]}


@router.get("/get_model_info/{binding_name}", response_model=ModelInfo)
async def get_model_info(
    binding_name: str, bindings: Bindings, model_name: str = Query(...)
) -> ModelInfo:
    return await bindings.get(binding_name).model_info(model_name)


@router.post(
    "/generate",
    response_model=GenerateResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def generate(body: GenerateRequest, service: Generation, request: Request) -> Response:
    """Generate; ``stream: true`` answers with Server-Sent Events."""
    start = start_stream if body.stream else start_run
    run = await start(request, service, translate.to_generation_request(body))
    if body.stream:
        return sse_response(
            translate.stream_events(run), on_close=run.aclose, first_ready=first_ready(run)
        )
    out = await collect_run(request, run)
    return JSONResponse(translate.response_body(run, out))


@router.post("/tokenize", response_model=TokenizeResponse)
async def tokenize(body: TokenizeRequest, service: Generation) -> TokenizeResponse:
    async with service.loaded_model(body.binding_name, body.model_name) as (binding, model):
        tokens = await binding.tokenize(model, body.text)
    return TokenizeResponse(
        tokens=tokens, count=len(tokens), binding_name=binding.instance_name, model_name=model
    )


@router.post("/detokenize", response_model=DetokenizeResponse)
async def detokenize(body: DetokenizeRequest, service: Generation) -> DetokenizeResponse:
    async with service.loaded_model(body.binding_name, body.model_name) as (binding, model):
        text = await binding.detokenize(model, body.tokens)
    return DetokenizeResponse(text=text, binding_name=binding.instance_name, model_name=model)


@router.post("/count_tokens", response_model=CountTokensResponse)
async def count_tokens(body: TokenizeRequest, service: Generation) -> CountTokensResponse:
    async with service.loaded_model(body.binding_name, body.model_name) as (binding, model):
        tokens = await binding.tokenize(model, body.text)
    return CountTokensResponse(
        count=len(tokens), binding_name=binding.instance_name, model_name=model
    )


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(min_length=1, max_length=4096)
    binding_name: str | None = None
    model_name: str | None = None


@router.post("/embed")
async def embed(body: EmbedRequest, service: Generation, request: Request) -> dict[str, Any]:
    """Vectors for ``texts`` (``[defaults] embed_binding`` when no binding is named)."""
    binding, model, result = await cancel_on_disconnect(
        request, service.embed(body.texts, body.binding_name, body.model_name)
    )
    return {
        "embeddings": result.vectors,
        "dimensions": len(result.vectors[0]),
        "binding_name": binding.instance_name,
        "model_name": model,
        "usage": {"prompt_tokens": result.tokens, "truncated_inputs": result.truncated},
    }


@router.get("/status")
async def status(service: Generation) -> dict[str, Any]:
    """Loaded models, memory per device, queue depth and waits, active generations."""
    return await service.scheduler.current_status()
