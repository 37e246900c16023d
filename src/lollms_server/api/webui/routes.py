"""lollms-webui's own routes, as lollms-client's ``lollms_webui`` binding and its ``lollms``
TTS binding call them: ``/lollms_generate`` (lollms' prompt format, plain text back) and
``/text2Audio`` (the key as ``client_id`` in the body)."""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.auth import authenticate, header_key
from lollms_server.api.deps import Generation, require_api_key
from lollms_server.api.disconnect import collect_run, start_run
from lollms_server.api.kit.encode import Encoder, Record, encode
from lollms_server.api.kit.media import decode_media
from lollms_server.api.lean import LeanRoute
from lollms_server.api.responses import utf8
from lollms_server.bindings.events import TextDelta
from lollms_server.bindings.types import Message, SamplingParams
from lollms_server.errors import BadRequest, LollmsError, NotFound, Unauthorized
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.run import Run
from lollms_server.generation.service import GenerationService
from lollms_server.personalities.prompting import split_lollms_prompt

__all__ = ["generate_router", "text2audio_router"]

logger = logging.getLogger(__name__)

generate_router = APIRouter(
    dependencies=[Depends(require_api_key)], tags=["lollms-webui"], route_class=LeanRoute
)


class LollmsGenerateBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    prompt: str
    model_name: str | None = None
    personality: str | int | None = None
    n_predict: int | None = Field(None, ge=-1)
    stream: bool | None = False  # lollms-client's lollms_webui binding sends null
    temperature: float | None = Field(None, ge=0)
    top_k: int | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)
    repeat_last_n: int | None = None
    seed: int | None = None
    images: list[str] | None = None


def _personality(body: LollmsGenerateBody, service: GenerationService) -> str | None:
    """lollms-webui sends a mounted personality's index (-1: none) or a name."""
    chosen = body.personality
    if chosen in (None, "", -1, "-1"):
        return None
    if isinstance(chosen, int) or (isinstance(chosen, str) and chosen.isdigit()):
        listed = service.personalities.all()
        index = int(chosen)
        if not 0 <= index < len(listed):
            raise BadRequest(
                f"personality index {index} is out of range (0-{len(listed) - 1}).",
                param="personality",
            )
        return listed[index].id
    return str(chosen)


def _request(
    body: LollmsGenerateBody, instance: str, model: str, service: GenerationService
) -> GenerationRequest:
    messages = list(split_lollms_prompt(body.prompt))
    if body.images:
        media = tuple(decode_media(image, "image", "images") for image in body.images)
        last = messages[-1]
        messages[-1] = Message(last.role, last.content, last.media + media)
    extra = {"repeat_last_n": body.repeat_last_n} if body.repeat_last_n is not None else {}
    return GenerationRequest(
        binding_name=instance,
        model_name=model,
        messages=tuple(messages),
        params=SamplingParams.from_wire(
            temperature=body.temperature,
            top_k=body.top_k,
            top_p=body.top_p,
            repeat_penalty=body.repeat_penalty,
            max_tokens=body.n_predict,
            seed=body.seed,
        ),
        extra=extra,
        personality=_personality(body, service),
    )


class _PlainText(Encoder):
    """The answer's text alone (a rewrite follows what was sent, after a blank line)."""

    def text(self, event: TextDelta) -> Record:
        return {"text": event.text}


async def _text_stream(run: Run) -> AsyncIterator[bytes]:
    try:
        async for record in encode(run, _PlainText()):
            yield utf8(record["text"])
    except LollmsError as exc:  # a plain text stream has no error event: say it
        logger.warning("lollms_generate stream failed: %s", exc.message)
        yield f"\n\n[error: {exc.error_type}: {exc.message}]".encode()
    finally:
        await run.aclose()


@generate_router.post("/lollms_generate")
@generate_router.post("/lollms_generate_with_images")
async def lollms_generate(
    body: LollmsGenerateBody, service: Generation, request: Request
) -> Response:
    """lollms-webui's generation endpoint: plain text back, or a plain text stream."""
    instance, model = await service.find_model(body.model_name or "default")
    run = await start_run(request, service, _request(body, instance, model, service))
    if body.stream:
        return StreamingResponse(_text_stream(run), media_type="text/plain; charset=utf-8")
    out = await collect_run(request, run)
    return PlainTextResponse(out.text)


# lollms-client's `lollms` TTS binding speaks lollms-webui's protocol: it sends the API key as
# `client_id` in the body (no Authorization header). Only this route reads a key from there;
# it is checked like any other key (constant time).
text2audio_router = APIRouter(tags=["lollms-webui"])


class Text2AudioBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str | None = None
    text: str = Field(min_length=1, max_length=100_000)
    voice: str | None = None
    fn: str | None = Field(
        None,
        description="lollms-webui's server-side file name: not "
        "written here (this server keeps no files); echoed back.",
    )


async def _key_in_body(request: Request) -> None:
    """The key from the headers (``Authorization: Bearer``, ``X-API-Key``) or the body's
    ``client_id``; checked before the body is validated, so that an unauthenticated caller
    learns nothing about it."""
    presented: Any = header_key(request)
    if presented is None:
        with contextlib.suppress(ValueError):
            data = await request.json()
            presented = data.get("client_id") if isinstance(data, dict) else None
    try:
        authenticate(request, presented if isinstance(presented, str) else None)
    except Unauthorized:
        raise Unauthorized(
            "Missing or invalid key: send it as 'client_id' (lollms-webui "
            "protocol), 'Authorization: Bearer <key>' or 'X-API-Key'."
        ) from None


@text2audio_router.post("/text2Audio", dependencies=[Depends(_key_in_body)])
async def text2audio(body: Text2AudioBody, service: Generation, request: Request) -> dict[str, Any]:
    """Speech from the tts default binding (or the binding serving ``voice``), returned as
    base64 WAV in the JSON answer."""
    model = "default"
    if body.voice and body.voice != "main_voice":  # lollms-webui's name for its default
        model = body.voice if "/" in body.voice else await _voice_model(service, body.voice)
    instance, name = await service.find_model(model, "tts")
    run = await start_run(
        request,
        service,
        GenerationRequest(
            generation_type="tts",
            binding_name=instance,
            model_name=name,
            messages=(Message("user", body.text),),
        ),
    )
    out = await collect_run(request, run)
    audio = next((m for m in out.media if m.kind == "audio"), None)
    if audio is None:
        raise BadRequest("The binding produced no audio.", param="voice")
    return {
        "status": True,
        "voice": f"{instance}/{name}",
        "mime_type": audio.mime_type,
        "audio": base64.b64encode(audio.data).decode("ascii"),
        "file_name": body.fn,
        "metadata": audio.metadata,
    }


async def _voice_model(service: GenerationService, voice: str) -> str:
    """A bare voice name (``en_US-joe-medium``) as ``instance/voice`` of a tts binding."""
    for instance in service.bindings.active_names():
        binding = service.bindings.get(instance)
        if "tts" in binding.serves():
            with contextlib.suppress(LollmsError):
                if any(m.name == voice for m in await binding.list_models()):
                    return f"{instance}/{voice}"
    raise NotFound(f"Voice '{voice}' not found in any tts binding.", param="voice")
