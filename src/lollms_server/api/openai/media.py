"""OpenAI-compatible media routes: ``/v1/images/generations`` and ``/v1/audio/speech``."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.deps import Generation, require_api_key
from lollms_server.api.disconnect import collect_run, start_run
from lollms_server.api.kit.audio import AUDIO_TYPES, encode_audio, require_av
from lollms_server.api.lean import LeanRoute
from lollms_server.api.responses import JSONResponse
from lollms_server.bindings.base import Binding
from lollms_server.bindings.media import parse_media
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest
from lollms_server.generation.service import CollectedOutput, GenerationRequest, GenerationService

__all__ = ["router"]

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_api_key)], tags=["openai"], route_class=LeanRoute
)
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # user, moderation...: accepted, no effect

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = None
    n: int = Field(1, ge=1)  # bounded by MediaOptions and the binding's max_images
    size: str | None = Field(None, description="'WIDTHxHEIGHT' or 'auto'.")
    response_format: Literal["b64_json", "url"] = "b64_json"
    output_format: Literal["png", "jpeg", "webp"] | None = None
    quality: str | None = None
    style: str | None = None
    # lollms extensions (lollms-client sends them)
    negative_prompt: str | None = None
    seed: int | None = None
    num_inference_steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0, le=100)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = None  # [defaults] tts_binding (lollms_client sends none)
    input: str = Field(min_length=1, max_length=100_000)
    voice: str | None = None
    response_format: Literal["wav", "pcm", "mp3", "opus", "aac", "flac"] | None = None
    speed: float | None = Field(None, ge=0.25, le=4.0)
    instructions: str | None = None


async def _collect(
    service: GenerationService,
    request: Request,
    generation_type: str,
    target: tuple[str, str],
    prompt: str,
    params: SamplingParams,
    extra: dict[str, Any],
) -> CollectedOutput:
    media, rest = parse_media(extra)
    instance, name = target
    body = GenerationRequest(
        generation_type=generation_type,
        binding_name=instance,
        model_name=name,
        messages=(Message("user", prompt),),
        params=params,
        extra=rest,
        media=media,
    )
    run = await start_run(request, service, body)
    return await collect_run(request, run)


@router.post("/images/generations")
async def images(body: ImageRequest, service: Generation, request: Request) -> dict[str, Any]:
    """Images from a tti binding (diffusers, or an upstream OpenAI-compatible server)."""
    if body.model_extra and body.model_extra.get("stream"):
        raise BadRequest("Streamed image generation is not served; omit 'stream'.", param="stream")
    if body.response_format == "url":
        raise BadRequest(
            "response_format 'url' is not served (this server keeps no files); use 'b64_json'.",
            param="response_format",
        )
    for name in ("quality", "style"):
        if getattr(body, name) is not None:
            raise BadRequest(
                f"'{name}' is not supported here; use num_inference_steps, "
                "guidance_scale or negative_prompt.",
                param=name,
            )
    extra: dict[str, Any] = {"n": body.n}
    if body.size and body.size != "auto":
        match = _SIZE.match(body.size)
        if match is None:
            raise BadRequest(
                "size must be 'WIDTHxHEIGHT' (e.g. '512x512') or 'auto'.", param="size"
            )
        extra["width"], extra["height"] = int(match.group(1)), int(match.group(2))
    for key in ("negative_prompt", "num_inference_steps", "guidance_scale", "output_format"):
        if getattr(body, key) is not None:
            extra["format" if key == "output_format" else key] = getattr(body, key)
    target = await service.find_model(body.model or "default", "tti")
    out = await _collect(
        service, request, "tti", target, body.prompt, SamplingParams(seed=body.seed), extra
    )
    images = [m for m in out.media if m.kind == "image"]
    return {
        "created": int(time.time()),
        "data": [
            {"b64_json": base64.b64encode(m.data).decode("ascii"), "revised_prompt": None}
            for m in images
        ],
        "output_format": images[0].mime_type.split("/")[1] if images else None,
    }


@router.post(
    "/audio/speech",
    response_class=Response,
    responses={200: {"content": {kind: {} for kind in AUDIO_TYPES.values()}}},
)
async def speech(body: SpeechRequest, service: Generation, request: Request) -> Response:
    """Speech from a tts binding: WAV (the default), raw 16-bit PCM, or mp3, opus, aac and
    flac encoded with PyAV. OpenAI's names (``tts-1``; the voices ``alloy``...) reach the
    default tts model and its default voice unless the binding has a voice of that name."""
    fmt = body.response_format or "wav"
    if fmt not in ("wav", "pcm"):
        require_av()  # before any generation
    if (body.model_extra or {}).get("stream_format") == "sse":
        raise BadRequest(
            "stream_format 'sse' is not served; the audio comes whole.", param="stream_format"
        )
    if body.instructions:
        raise BadRequest("'instructions' is not supported by these voices.", param="instructions")
    instance, name = await service.find_model(body.model or "default", "tts")
    extra: dict[str, Any] = {}
    voice = await _voice(service.bindings.get(instance), name, body.voice)
    if voice is not None:
        extra["voice"] = voice
    if body.speed is not None:
        extra["speed"] = body.speed
    out = await _collect(
        service, request, "tts", (instance, name), body.input, SamplingParams(), extra
    )
    audio = next((m for m in out.media if m.kind == "audio"), None)
    if audio is None:
        raise BadRequest("The binding produced no audio.", param="model")
    if fmt == "pcm":
        rate = str(audio.metadata.get("sample_rate", ""))  # the voice's own rate
        return Response(
            _pcm(audio.data),
            media_type="audio/pcm",
            headers={"x-sample-rate": rate} if rate else None,
        )
    if fmt == "wav":
        return Response(audio.data, media_type=audio.mime_type)
    encoded = await asyncio.to_thread(encode_audio, audio.data, fmt)
    return Response(encoded, media_type=AUDIO_TYPES[fmt])


OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer"}
    | {"verse", "marin", "cedar"}
)


async def _voice(binding: Binding, model: str, voice: str | None) -> str | None:
    """The voice to ask for: an OpenAI voice name the binding does not have is its default
    voice (None); any other name goes as it is (the binding refuses what it lacks)."""
    if voice is None or voice not in OPENAI_VOICES:
        return voice
    known = await binding.voices(model)
    return voice if known is None or voice in known else None


def _pcm(wav_bytes: bytes) -> bytes:
    import io
    import wave

    with wave.open(io.BytesIO(wav_bytes)) as wav:
        return bytes(wav.readframes(wav.getnframes()))


_TRANSCRIPT_FORMATS = ("json", "text", "verbose_json")


async def _transcribe(
    request: Request,
    service: GenerationService,
    file: UploadFile,
    model: str,
    language: str | None,
    task: str,
    response_format: str,
    temperature: float | None,
) -> Response:
    if response_format not in _TRANSCRIPT_FORMATS:
        raise BadRequest(
            f"response_format '{response_format}' is not produced here; use "
            f"{', '.join(_TRANSCRIPT_FORMATS)}.",
            param="response_format",
        )
    data = await file.read()
    if not data:
        raise BadRequest("The uploaded file is empty.", param="file")
    extra: dict[str, Any] = {"task": task}
    if language:
        extra["language"] = language
    instance, name = await service.find_model(model, "stt")
    body = GenerationRequest(
        generation_type="stt",
        binding_name=instance,
        model_name=name,
        messages=(
            Message(
                "user",
                "",
                (MediaPart("audio", data, file.content_type or "application/octet-stream"),),
            ),
        ),
        params=SamplingParams(temperature=temperature),
        extra=extra,
    )
    run = await start_run(request, service, body)
    out = await collect_run(request, run)
    if response_format == "text":
        return PlainTextResponse(out.text)
    result: dict[str, Any] = {"text": out.text}
    if response_format == "verbose_json":
        result.update(
            task=task,
            language=language,
            duration=out.metadata.get("duration_s"),
            model=f"{instance}/{name}",
        )
    return JSONResponse(result)


@router.post("/audio/transcriptions")
async def transcriptions(
    request: Request,
    service: Generation,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    """Speech to text from an stt binding (multipart upload, as the openai SDK sends it)."""
    if stream:
        raise BadRequest("Streamed transcription is not served; omit 'stream'.", param="stream")
    unsupported = sorted(
        k
        for k in await request.form()
        if k.rstrip("[]") in ("timestamp_granularities", "include", "chunking_strategy")
    )
    if unsupported:
        raise BadRequest(f"{', '.join(unsupported)} is not supported here.", param=unsupported[0])
    if prompt:
        raise BadRequest("'prompt' is not supported by these speech models.", param="prompt")
    return await _transcribe(
        request, service, file, model, language, "transcribe", response_format, temperature
    )


@router.post("/audio/translations")
async def translations(
    request: Request,
    service: Generation,
    file: Annotated[UploadFile, File()],
    model: Annotated[str, Form()],
    response_format: Annotated[str, Form()] = "json",
    temperature: Annotated[float | None, Form(ge=0, le=1)] = None,
) -> Response:
    """Speech in any language to English text (multilingual Whisper models)."""
    return await _transcribe(
        request, service, file, model, None, "translate", response_format, temperature
    )
