"""OpenAI-compatible ``/v1`` routes: models, chat completions, completions."""

from __future__ import annotations

import base64
import struct
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.deps import Bindings, Generation, require_api_key
from lollms_server.api.disconnect import (
    collect_run,
    first_ready,
    start_run,
    start_stream,
)
from lollms_server.api.kit.embed import embed_texts
from lollms_server.api.kit.models import gather_models
from lollms_server.api.openai import translate
from lollms_server.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from lollms_server.api.responses import JSONResponse
from lollms_server.api.streaming import SSEResponse
from lollms_server.errors import BadRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)], tags=["openai"])
_DONE = b"data: [DONE]\n\n"


def _model_entry(instance: str, model: str, owner: str) -> dict[str, Any]:
    return {"id": f"{instance}/{model}", "object": "model", "created": 0, "owned_by": owner}


@router.get("/models")
async def list_models(bindings: Bindings, service: Generation) -> dict[str, Any]:
    """Every model of every active binding instance, as ``instance/model``, plus aliases."""
    listed, _ = await gather_models(bindings)
    data = [
        _model_entry(name, model.name, bindings.get(name).name)
        for name, models in listed.items()
        for model in models
    ]
    data += [
        {"id": alias, "object": "model", "created": 0, "owned_by": service.settings.alias(alias)[0]}
        for alias in service.settings.aliases
    ]
    return {"object": "list", "data": data}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, service: Generation) -> dict[str, Any]:
    instance, model = await service.find_model(model_id)
    binding = service.bindings.get(instance)
    await binding.model_info(model)
    return _model_entry(instance, model, binding.name)


def _openai_error(body: dict[str, Any]) -> dict[str, Any]:
    return body  # already {"error": {...}}, the shape OpenAI streams use


@router.post("/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, service: Generation, request: Request
) -> Response:
    instance, model = await service.find_model(body.model)
    binding = service.bindings.get(instance)
    model_id = f"{instance}/{model}"
    wanted = translate.chat_request(body, binding, model)
    legacy = translate.uses_legacy_functions(body)
    personality = wanted.personality or service.alias_personality(body.model)
    start = start_stream if body.stream else start_run
    run = await start(request, service, replace(wanted, personality=personality))
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return SSEResponse(
            translate.chat_chunks(run, model_id, usage, legacy),
            on_close=run.aclose,
            terminator=_DONE,
            error_event=_openai_error,
            first_ready=first_ready(run),
        )
    out = await collect_run(request, run)
    return JSONResponse(translate.chat_response(run, model_id, out, legacy))


@router.post("/completions")
async def completions(body: CompletionRequest, service: Generation, request: Request) -> Response:
    instance, model = await service.find_model(body.model)
    binding = service.bindings.get(instance)
    model_id = f"{instance}/{model}"
    wanted = translate.completion_request(body, binding, model)  # checks the prompt first
    echo = wanted.raw_prompt if body.echo else None
    personality = wanted.personality or service.alias_personality(body.model)
    start = start_stream if body.stream else start_run
    run = await start(request, service, replace(wanted, personality=personality))
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return SSEResponse(
            translate.completion_chunks(run, model_id, usage, echo),
            on_close=run.aclose,
            terminator=_DONE,
            error_event=_openai_error,
            first_ready=first_ready(run),
        )
    out = await collect_run(request, run)
    return JSONResponse(translate.completion_response(run, model_id, out, echo))


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # user: accepted, no effect

    model: str
    # At most 2048 inputs per request (OpenAI's limit): a bound on the list of inputs, not on
    # a text's length (nor on one input given as token ids).
    input: (
        str
        | Annotated[list[str], Field(max_length=2048)]
        | list[int]
        | Annotated[list[list[int]], Field(max_length=2048)]
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingRequest, service: Generation, request: Request
) -> dict[str, Any]:
    """Vectors from an embedding binding (``hf_embeddings``)."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not all(isinstance(t, str) for t in texts):
        raise BadRequest("Token arrays are not accepted: send the texts.", param="input")
    instance, model, result = await embed_texts(
        request, service, [str(t) for t in texts], body.model
    )
    width = len(result.vectors[0])
    if body.dimensions is not None and body.dimensions != width:
        raise BadRequest(
            f"'{instance}/{model}' makes {width}-dimensional vectors; "
            f"'dimensions' cannot change that.",
            param="dimensions",
        )
    data = []
    for index, vector in enumerate(result.vectors):
        value: Any = vector
        if body.encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    return {
        "object": "list",
        "data": data,
        "model": f"{instance}/{model}",
        "usage": {"prompt_tokens": result.tokens, "total_tokens": result.tokens},
    }
