"""Ollama-compatible ``/api`` routes: tags, show, ps, version, generate, chat (NDJSON)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from lollms_server import __version__
from lollms_server.api.deps import Bindings, Generation, require_api_key
from lollms_server.api.disconnect import (
    collect_run,
    first_ready,
    start_run,
    start_stream,
)
from lollms_server.api.errors import error_headers, error_payload, validation_error_response
from lollms_server.api.kit.embed import embed_texts
from lollms_server.api.kit.models import created_at, gather_models
from lollms_server.api.lean import Handler, LeanRoute
from lollms_server.api.ollama import translate
from lollms_server.api.ollama.schemas import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    LegacyEmbedRequest,
    ModelRequest,
)
from lollms_server.api.responses import JSONResponse
from lollms_server.api.streaming import NDJSONResponse
from lollms_server.bindings.base import Binding
from lollms_server.bindings.types import ModelInfo
from lollms_server.errors import BadRequest, LollmsError, NotServed
from lollms_server.generation.resolve import well_known_type
from lollms_server.generation.service import GenerationRequest, GenerationService
from lollms_server.resources.scheduler import ModelState

__all__ = ["router"]


class _OllamaRoute(LeanRoute):
    """Errors in Ollama's own shape, ``{"error": "message"}``, with the same status codes."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def wrapped(request: Request) -> Response:
            if request.method == "POST" and "json" not in request.headers.get("content-type", ""):
                # Ollama reads every body as JSON whatever its type (its docs' curl examples
                # send form-encoded): so does this.
                scope = dict(request.scope)
                scope["headers"] = [
                    (k, v) for k, v in request.scope["headers"] if k != b"content-type"
                ]
                scope["headers"].append((b"content-type", b"application/json"))
                request = Request(scope, request.receive)
            try:
                return await handler(request)
            except (LollmsError, RequestValidationError) as exc:
                if isinstance(exc, RequestValidationError):
                    response = await validation_error_response(request, exc)
                    message = json.loads(bytes(response.body))["error"]["message"]
                    return JSONResponse(
                        {"error": message},
                        status_code=response.status_code,
                        headers={
                            k: v
                            for k, v in response.headers.items()
                            if k.lower() == "www-authenticate"
                        },
                    )
                status, body = error_payload(exc)
                return JSONResponse(
                    {"error": body["error"]["message"]},
                    status_code=status,
                    headers=error_headers(exc),
                )

        return wrapped


router = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_api_key)],
    tags=["ollama"],
    route_class=_OllamaRoute,
)


OLLAMA_VERSION = "0.12.0"
"""The Ollama API version these routes follow (version-gated clients check it)."""


def _details(binding: Binding, info: ModelInfo) -> dict[str, Any]:
    family = _family(binding, info)
    return {
        "parent_model": "",
        "format": str(info.details.get("format") or ""),
        "family": family,
        "families": [family],
        "parameter_size": str(info.details.get("parameter_size") or ""),
        "quantization_level": str(
            info.details.get("quantization_level") or info.details.get("quantization") or ""
        ),
    }


def _family(binding: Binding, info: ModelInfo) -> str:
    """The model's architecture where its binding says (an upstream Ollama, a loaded model's
    config), else the binding's name."""
    for key in ("family", "architecture", "general.architecture", "model_type"):
        value = info.details.get(key)
        if isinstance(value, str) and value:
            return value
    return binding.name


def _stamp(seconds: float | None = None) -> str:
    """``seconds`` (unix time; None: now) as Ollama writes times."""
    if seconds is None:
        return datetime.now(timezone.utc).isoformat()
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _digest(key: str, info: ModelInfo, created: int) -> str:
    """A stable id of this model version (its name, size and file time)."""
    return hashlib.sha256(f"{key}|{info.size_bytes}|{created}".encode()).hexdigest()


@router.get("/version")
async def version() -> dict[str, str]:
    """Ollama's API version (what Ollama clients compare against), and this server's own."""
    return {"version": OLLAMA_VERSION, "lollms_server_version": __version__}


def _tag(name: str, binding: Binding, info: ModelInfo) -> dict[str, Any]:
    key, created = f"{name}/{info.name}", created_at(binding, info)
    return {
        "name": key,
        "model": key,
        "modified_at": _stamp(created),
        "size": info.size_bytes or 0,
        "digest": _digest(key, info, created),
        "details": _details(binding, info),
    }


@router.get("/tags")
async def tags(bindings: Bindings) -> dict[str, Any]:
    listed, _ = await gather_models(bindings)
    models = [_tag(name, bindings.get(name), m) for name, infos in listed.items() for m in infos]
    return {"models": models}


@router.post("/show")
async def show(body: ModelRequest, service: Generation) -> dict[str, Any]:
    # a well-known name (nomic-embed-text) is looked up as its type's default
    instance, model = await service.find_model(body.model, well_known_type(body.model) or "ttt")
    binding = service.bindings.get(instance)
    info = await binding.model_info(model)
    family = _family(binding, info)
    return {
        "modelfile": "",
        "parameters": "",
        "template": str(info.details.get("chat_template") or ""),
        "details": _details(binding, info),
        "model_info": {
            **{k: v for k, v in info.details.items() if isinstance(v, str | int | float)},
            "general.architecture": family,
            f"{family}.context_length": info.context_size,
            "context_length": info.context_size,
        },
        "capabilities": _capabilities(binding),
        "modified_at": _stamp(created_at(binding, info)),
    }


def _capabilities(binding: Binding) -> list[str]:
    found = ["completion"] if "ttt" in binding.serves() else []
    found += [
        name
        for name, flag in (
            ("embedding", binding.capabilities.embeddings),
            ("tools", binding.capabilities.tools),
            ("vision", binding.capabilities.vision),
        )
        if flag
    ]
    return found


def _expires(state: ModelState, keep: float) -> str:
    """When an idle model unloads: its last use plus its keep-alive (in use: from now)."""
    now = datetime.now(timezone.utc)
    if keep < 0:
        return (now + timedelta(days=3650)).isoformat()
    idle = 0.0 if state.active or not state.last_used else time.monotonic() - state.last_used
    return (now + timedelta(seconds=max(0.0, keep - idle))).isoformat()


@router.get("/ps")
async def ps(service: Generation) -> dict[str, Any]:
    models = []
    for state in service.scheduler.loaded():
        info = await state.binding.model_info(state.model)
        created = created_at(state.binding, info)
        models.append(
            {
                "name": state.key,
                "model": state.key,
                "size": state.need,
                "digest": _digest(state.key, info, created),
                "size_vram": state.need if state.device.startswith("gpu") else 0,
                "expires_at": _expires(state, service.scheduler._keep_alive(state)),
                "context_length": info.context_size,
                "details": _details(state.binding, info),
            }
        )
    return {"models": models}


@router.post("/embed")
async def embed(body: EmbedRequest, service: Generation, request: Request) -> dict[str, Any]:
    """Ollama's embeddings: ``input`` is a text or a list of texts."""
    started = time.perf_counter_ns()
    instance, model, result = await embed_texts(request, service, body.input, body.model)
    if not body.truncate and result.truncated:
        raise BadRequest(
            f"{result.truncated} input(s) exceed the model's context length (truncate is false).",
            param="input",
        )
    return {
        "model": f"{instance}/{model}",
        "embeddings": result.vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": result.tokens,
    }


@router.post("/embeddings")
async def embeddings(
    body: LegacyEmbedRequest, service: Generation, request: Request
) -> dict[str, Any]:
    """Ollama's older single-text endpoint."""
    _, _, result = await embed_texts(request, service, body.prompt, body.model)
    return {"embedding": result.vectors[0]}


async def _answer(
    service: GenerationService,
    request: Request,
    body: GenerationRequest,
    model_id: str,
    chat: bool,
    streamed: bool,
    asked: str,
    think: bool | str | None = None,
) -> Response:
    """``asked``: the client's model name (an alias may select a personality)."""
    body = replace(body, personality=service.alias_personality(asked))
    run = await (start_stream if streamed else start_run)(request, service, body)
    if streamed:
        return NDJSONResponse(
            translate.stream(run, model_id, chat, think),
            on_close=run.aclose,
            error_event=lambda e: {"error": e["error"]["message"]},
            first_ready=first_ready(run),
        )
    out = await collect_run(request, run)
    return JSONResponse(translate.answer(run, out, model_id, chat, think))


_MODEL_FILES = (
    "lollms_server does not manage model files through the Ollama API: put GGUF "
    "files in [paths] models (or a binding's models folder), or point an 'ollama' "
    "binding at an Ollama server that has the model."
)


@router.post("/pull")
@router.post("/push")
@router.post("/create")
@router.post("/copy")
@router.delete("/delete")
async def model_files() -> None:
    """Ollama's model-file management: not served (a clear 501, never a silent no-op)."""
    raise NotServed(_MODEL_FILES)


@router.post("/generate")
async def generate(body: GenerateRequest, service: Generation, request: Request) -> Response:
    instance, model = await service.find_model(body.model)
    binding = service.bindings.get(instance)
    if not body.prompt and not body.images:  # Ollama: an empty prompt just loads the model
        reason = await _load(service, instance, model, body.keep_alive)
        return JSONResponse(
            {
                "model": f"{instance}/{model}",
                "created_at": _stamp(),
                "response": "",
                "done": True,
                "done_reason": reason,
            }
        )
    return await _answer(
        service,
        request,
        translate.generate_request(body, binding, model),
        f"{instance}/{model}",
        chat=False,
        streamed=body.stream,
        asked=body.model,
        think=body.think,
    )


async def _load(
    service: GenerationService, instance: str, model: str, keep_alive: float | str | None
) -> str:
    """Ollama's request without input: load the model (keep_alive 0: unload it)."""
    keep = translate.parse_keep_alive(keep_alive)
    binding = service.bindings.get(instance)
    if keep == 0 and service.scheduler.state(binding, model).status == "unloaded":
        return "unload"  # nothing to do: loading it first could evict other models
    lease = await service.scheduler.acquire(binding, model, keep_alive=keep)
    lease.release()
    return "unload" if keep == 0 else "load"


@router.post("/chat")
async def chat(body: ChatRequest, service: Generation, request: Request) -> Response:
    instance, model = await service.find_model(body.model)
    binding = service.bindings.get(instance)
    if not body.messages:  # Ollama: no messages just loads the model
        reason = await _load(service, instance, model, body.keep_alive)
        return JSONResponse(
            {
                "model": f"{instance}/{model}",
                "created_at": _stamp(),
                "message": {"role": "assistant", "content": ""},
                "done": True,
                "done_reason": reason,
            }
        )
    return await _answer(
        service,
        request,
        translate.chat_request(body, binding, model),
        f"{instance}/{model}",
        chat=True,
        streamed=body.stream,
        asked=body.model,
        think=body.think,
    )
