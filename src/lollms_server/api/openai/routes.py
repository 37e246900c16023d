"""OpenAI-compatible ``/v1`` routes: models, chat completions, completions."""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
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
from lollms_server.api.kit.encode import Encoder
from lollms_server.api.kit.models import STARTED, facts, gather_models, generation_type
from lollms_server.api.lean import LeanRoute
from lollms_server.api.openai import translate
from lollms_server.api.openai.choices import MergedChoices, collect_choices
from lollms_server.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from lollms_server.api.responses import JSONResponse
from lollms_server.api.streaming import SSEResponse
from lollms_server.bindings.base import Binding
from lollms_server.bindings.types import ModelInfo
from lollms_server.errors import BadRequest
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.service import GenerationRequest, GenerationService, Run

__all__ = ["router"]

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_api_key)], tags=["openai"], route_class=LeanRoute
)
_DONE = b"data: [DONE]\n\n"


def _model_entry(instance: str, binding: Binding, info: ModelInfo) -> dict[str, Any]:
    known = facts(binding, info)
    return {
        "id": f"{instance}/{info.name}",
        "object": "model",
        "created": known.created,
        "owned_by": binding.name,
        "type": known.types[0],  # its main generation type: ttt, embed, tti, tts, stt...
        "types": known.types,
        "context_length": known.context_length,
    }


_TYPE_QUERY = Query(
    alias="type",
    description="Only models of this generation type (ttt, embed, tti, tts, stt, ttv, ttm; "
    "or chat, embedding, image, speech, transcription...).",
)


@router.get("/models")
async def list_models(
    bindings: Bindings,
    service: Generation,
    model_type: Annotated[str | None, _TYPE_QUERY] = None,
) -> dict[str, Any]:
    """Every model of every active binding instance, as ``instance/model`` (with its types,
    context length and creation time), plus aliases; ``?type=`` keeps one generation type."""
    wanted = generation_type(model_type)
    listed, _ = await gather_models(bindings)  # all: an alias's target may be elsewhere
    entries = {
        f"{name}/{info.name}": _model_entry(name, bindings.get(name), info)
        for name, infos in listed.items()
        for info in infos
    }
    data = [e for e in entries.values() if wanted is None or wanted in e["types"]]
    for alias in service.settings.aliases:
        target = service.settings.alias(alias)[0]
        entry = entries.get(target) or _alias_entry(alias, target)
        if wanted is None or wanted in entry["types"]:
            data.append({**entry, "id": alias, "owned_by": target})
    return {"object": "list", "data": data}


def _alias_entry(alias: str, target: str) -> dict[str, Any]:
    """An alias whose target is not listed (the default model, an instance that failed)."""
    return {
        "id": alias,
        "object": "model",
        "created": int(STARTED),
        "owned_by": target,
        "type": "ttt",
        "types": ["ttt"],
        "context_length": None,
    }


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, service: Generation) -> dict[str, Any]:
    instance, model = await service.find_model(model_id)
    binding = service.bindings.get(instance)
    return _model_entry(instance, binding, await binding.model_info(model))


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
    bodies = translate.choice_requests(replace(wanted, personality=personality), body.n)
    if not body.stream:
        run, outs = await _collected(request, service, bodies)
        return JSONResponse(translate.chat_response(run, model_id, outs, legacy))
    usage = bool(body.stream_options and body.stream_options.include_usage)
    run = await start_stream(request, service, bodies[0])
    if len(bodies) == 1:
        return _sse(run, translate.chat_chunks(run, model_id, usage, legacy))
    return _merged(
        service,
        run,
        bodies[1:],
        lambda i: translate.ChatChunks(run, model_id, False, legacy, i),
        _usage_closing(run, model_id, "chat.completion.chunk", usage),
    )


@router.post("/completions")
async def completions(body: CompletionRequest, service: Generation, request: Request) -> Response:
    instance, model = await service.find_model(body.model)
    binding = service.bindings.get(instance)
    model_id = f"{instance}/{model}"
    wanted = translate.completion_request(body, binding, model)  # checks the prompt first
    echo = wanted.raw_prompt if body.echo else None
    personality = wanted.personality or service.alias_personality(body.model)
    bodies = translate.choice_requests(replace(wanted, personality=personality), body.n)
    if not body.stream:
        run, outs = await _collected(request, service, bodies)
        return JSONResponse(translate.completion_response(run, model_id, outs, echo))
    usage = bool(body.stream_options and body.stream_options.include_usage)
    run = await start_stream(request, service, bodies[0])
    if len(bodies) == 1:
        return _sse(run, translate.completion_chunks(run, model_id, usage, echo))
    return _merged(
        service,
        run,
        bodies[1:],
        lambda i: translate.CompletionChunks(run, model_id, False, echo, i),
        _usage_closing(run, model_id, "text_completion", usage),
    )


async def _collected(
    request: Request, service: GenerationService, bodies: list[GenerationRequest]
) -> tuple[Run, list[CollectedOutput]]:
    """The whole output of each choice (one: the plain path)."""
    if len(bodies) > 1:
        return await collect_choices(request, service, bodies)
    run = await start_run(request, service, bodies[0])
    return run, [await collect_run(request, run)]


def _sse(run: Run, records: AsyncIterator[dict[str, Any]]) -> SSEResponse:
    return SSEResponse(
        records,
        on_close=run.aclose,
        terminator=_DONE,
        error_event=_openai_error,
        first_ready=first_ready(run),
    )


def _usage_closing(
    run: Run, model_id: str, kind: str, wanted: bool
) -> Callable[[list[CollectedOutput]], list[dict[str, Any]]]:
    def closing(outs: list[CollectedOutput]) -> list[dict[str, Any]]:
        return [translate.usage_chunk(run, model_id, kind, outs)] if wanted else []

    return closing


def _merged(
    service: GenerationService,
    first: Run,
    rest: list[GenerationRequest],
    encoder: Callable[[int], Encoder],
    closing: Callable[[list[CollectedOutput]], list[dict[str, Any]]],
) -> SSEResponse:
    """One stream of several choices (see choices.MergedChoices)."""
    merged = MergedChoices(service, first, rest, encoder, closing)
    return SSEResponse(
        merged.records(),
        on_close=merged.aclose,
        terminator=_DONE,
        error_event=_openai_error,
        first_ready=first_ready(first),
    )


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
    """Vectors from an embedding binding (``hf_embeddings``); texts or token ids."""
    instance, model, result = await embed_texts(request, service, body.input, body.model)
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
