"""OpenAI-compatible binding, on the official ``openai`` async SDK.

Works with OpenAI itself and any server speaking its API: vLLM, LM Studio, llama.cpp's
server, OpenRouter, or another lollms_server. Upstream errors are mapped into the server's
error tree: 401/403 -> ``binding_auth_error`` (502: the *upstream* key is wrong, not the
client's), 429 and 5xx -> 503 with the upstream's Retry-After, connection refused ->
``binding_unavailable`` naming the URL. Upstream text reaches clients only with this
instance's secrets (key, header values, URL credentials) replaced by ``***``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from typing_extensions import TypeVar

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.media import media_options, prompt_of
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, ModelInfo
from lollms_server.errors import (
    BadRequest,
    BindingAuthError,
    BindingUnavailable,
    GenerationFailed,
    LollmsError,
    NotFound,
)
from lollms_server.security.redact import Redactor, header_secrets, safe_url, url_secrets

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAIBinding", "OpenAIConfig"]

_MEDIA_OPTIONS = {
    "tti": ("width", "height", "steps", "guidance", "negative_prompt", "n", "format"),
    "tts": ("voice", "speed"),
}


def _image_mime(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


EXTRA_PARAMETERS = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "response_format",
        "reasoning_effort",
    }
)


class OpenAIConfig(BindingConfig):
    base_url: str = Field("https://api.openai.com/v1", description="The API's /v1 URL.")
    api_key: SecretStr | None = Field(None, description="Key sent upstream (or api_key_env).")
    api_key_env: str | None = Field(None, description="Environment variable holding the key.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    timeout: float = Field(600.0, gt=0)
    max_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="SDK retries of dropped connections, 429 and 5xx (with "
        "the upstream's Retry-After); 0 passes them to the client at once.",
    )
    models: list[str] = Field(
        default_factory=list, description="Model ids, for servers without GET /models."
    )
    context_size: int | None = Field(None, ge=1, description="Reported context size.")
    max_concurrency: int = Field(16, ge=1, description="Requests run at once upstream.")
    vision: bool = Field(True, description="Send image inputs (for vision models).")
    modalities: list[Literal["ttt", "tti", "tts"]] = Field(
        default=["ttt"],
        description="What the upstream serves: ttt (chat and "
        "completions), tti (/images/generations), tts (/audio/speech).",
    )
    default_voice: str | None = Field(
        None,
        description="Speech voice when a request names "
        "none (OpenAI-compatible speech requires one).",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> OpenAIConfig:
        if _has_userinfo(self.base_url) and (self.api_key is not None or self.api_key_env):
            raise ValueError(
                "base_url carries credentials (user:password@) and api_key or api_key_env is "
                "set too: the upstream would receive only the URL's (as HTTP Basic), never the "
                "key. Keep one of them."
            )
        return self


def _has_userinfo(url: str) -> bool:
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # not a URL at all: the SDK reports it when it is used
        return False


OpenAIConfigT = TypeVar("OpenAIConfigT", bound=OpenAIConfig, covariant=True, default=OpenAIConfig)


class OpenAIBinding(Binding[OpenAIConfigT]):
    name: ClassVar[str] = "openai"
    description: ClassVar[str] = "Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, ...)."
    modalities: ClassVar[frozenset[str]] = frozenset({"ttt", "tti", "tts"})
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True, vision=True, structured_output=True, tools=True
    )
    extra_parameters: ClassVar[frozenset[str] | None] = EXTRA_PARAMETERS

    def __init__(self, config: OpenAIConfigT, context: BindingContext) -> None:
        super().__init__(config, context)
        self._client: AsyncOpenAI | None = None
        self.redact = Redactor(self._secrets())

    def _secrets(self) -> list[str]:
        """What must never come back from the upstream: key, header values, URL credentials."""
        key = self._key() if self.config.api_key is not None or self.config.api_key_env else None
        return [key or "", *header_secrets(self.config.headers), *url_secrets(self.config.base_url)]

    def _key(self) -> str:
        if self.config.api_key is not None:
            return self.config.api_key.get_secret_value()
        if self.config.api_key_env:
            return os.environ.get(self.config.api_key_env, "")
        return "none"  # keyless local servers; the SDK insists on a value

    def client(self) -> AsyncOpenAI:
        if self._client is None:
            try:
                from openai import AsyncOpenAI
            except ImportError as exc:
                raise BindingUnavailable(
                    "The openai package is not installed: pip install 'lollms_server[openai]'"
                ) from exc
            self._client = AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self._key(),
                default_headers=self.config.headers,
                timeout=self.config.timeout,
                max_retries=self.config.max_retries,
            )
        return self._client

    # -- models ----------------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        names = list(self.config.models)
        if not names:
            try:
                page = await self.client().models.list()
                names = [m.id async for m in page]
            except Exception as exc:
                raise self._map(exc) from None
        return [
            ModelInfo(
                name=n,
                context_size=self.config.context_size,
                details={"base_url": safe_url(self.config.base_url)},
            )
            for n in names
        ]

    def serves(self) -> frozenset[str]:
        return frozenset(self.config.modalities)

    def max_concurrency(self, model: str) -> int:
        return self.config.max_concurrency

    def memory_estimate(self, model: str) -> int | None:
        return 0  # served elsewhere: takes nothing from this machine's budget

    async def load(self, model: str) -> None:
        return None  # nothing to load here: the upstream server owns the model

    async def unload(self, model: str) -> None:
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    # -- generation ------------------------------------------------------------------------
    def check_request(self, request: BindingRequest) -> None:
        if request.generation_type in _MEDIA_OPTIONS:
            options = media_options(request, _MEDIA_OPTIONS[request.generation_type])
            prompt_of(request)
            if request.generation_type == "tts" and not (
                options.voice or self.config.default_voice
            ):
                raise BadRequest(
                    "OpenAI-compatible speech needs a voice: give parameters."
                    "voice, or set default_voice.",
                    param="parameters.voice",
                )
            return
        if not self.config.vision and any(m.media for m in request.messages):
            raise BadRequest(
                f"Binding instance '{self.instance_name}' is configured without "
                "vision (vision = false).",
                param="input_data",
            )

    def _message(self, message: Message) -> dict[str, Any]:
        if message.tool_calls or message.tool_call_id:
            out: dict[str, Any] = {"role": message.role, "content": message.content or None}
            if message.tool_calls:
                out["tool_calls"] = [dict(c) for c in message.tool_calls]
            if message.tool_call_id:
                out["tool_call_id"] = message.tool_call_id
            return out
        if not message.media:
            return {"role": message.role, "content": message.content}
        parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
        for media in message.media:
            if media.kind != "image":
                raise BadRequest(
                    f"Only images can be sent upstream, not {media.kind}.", param="input_data"
                )
            url = f"data:{media.mime_type};base64,{base64.b64encode(media.data).decode()}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return {"role": message.role, "content": parts}

    def _params(self, request: BindingRequest) -> dict[str, Any]:
        p = request.params
        out: dict[str, Any] = {"model": request.model, "stream": True}
        for name, value in (
            ("temperature", p.temperature),
            ("top_p", p.top_p),
            ("max_tokens", p.max_tokens),
            ("seed", p.seed),
        ):
            if value is not None:
                out[name] = value
        if p.stop:
            out["stop"] = list(p.stop)
        if request.tools:
            out["tools"] = [dict(t) for t in request.tools]
            if request.tool_choice is not None:
                out["tool_choice"] = request.tool_choice
        extra_body: dict[str, Any] = {}
        if p.top_k is not None:
            extra_body["top_k"] = p.top_k
        if p.repeat_penalty is not None:
            extra_body["repeat_penalty"] = p.repeat_penalty
        if request.json_schema is not None:
            out["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(request.json_schema)},
            }
        out.update(request.extra)
        if extra_body:
            out["extra_body"] = extra_body
        return out

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        if request.generation_type == "tti":
            media = self._images(request)
        elif request.generation_type == "tts":
            media = self._speech(request)
        else:
            async for event in self._text(request):
                yield event
            return
        try:
            outputs = await media
        except LollmsError:
            raise
        except Exception as exc:
            raise self._map(exc) from None
        for output in outputs:
            yield output
        yield Usage(0, 0)
        yield Finished("stop", {"upstream": safe_url(self.config.base_url)})

    async def _images(self, request: BindingRequest) -> list[MediaOutput]:
        options = media_options(request)
        extra_body: dict[str, Any] = {}
        for key, value in (
            ("negative_prompt", options.negative_prompt),
            ("num_inference_steps", options.steps),
            ("guidance_scale", options.guidance),
            ("seed", request.params.seed),
            ("output_format", options.format),
        ):
            if value is not None:
                extra_body[key] = value
        size = f"{options.width}x{options.height}" if options.width and options.height else None
        images: Any = self.client().images
        kwargs: dict[str, Any] = {"size": size} if size else {}
        if not request.model.startswith("gpt-image"):  # those always answer b64_json and
            kwargs["response_format"] = "b64_json"  # refuse the parameter
        result = await images.generate(
            model=request.model,
            prompt=prompt_of(request),
            n=options.n,
            extra_body=extra_body or None,
            **kwargs,
        )
        outputs = []
        for index, item in enumerate(result.data or []):
            if not item.b64_json:
                raise GenerationFailed("The upstream server returned no b64_json image.")
            data = base64.b64decode(item.b64_json)
            outputs.append(MediaOutput(data, _image_mime(data), "image", {"index": index}))
        return outputs

    async def _speech(self, request: BindingRequest) -> list[MediaOutput]:
        options = media_options(request)
        extra: dict[str, Any] = {}
        if options.speed is not None:
            extra["speed"] = options.speed
        response = await self.client().audio.speech.create(
            model=request.model,
            input=prompt_of(request),
            voice=options.voice or self.config.default_voice or "",
            response_format="wav",
            **extra,
        )
        return [
            MediaOutput(
                response.content,
                "audio/wav",
                "audio",
                {"voice": options.voice or self.config.default_voice},
            )
        ]

    async def _text(self, request: BindingRequest) -> AsyncIterator[Event]:
        params = self._params(request)
        client = self.client()
        try:
            if request.raw_prompt is not None:
                stream: Any = await client.completions.create(prompt=request.raw_prompt, **params)
            else:
                stream = await client.chat.completions.create(  # type: ignore[call-overload]
                    messages=[self._message(m) for m in request.messages],
                    stream_options={"include_usage": True},
                    **params,
                )
        except Exception as exc:
            raise self._map(exc) from None
        finish = "stop"
        usage = None
        calls: dict[int, dict[str, str]] = {}  # tool calls arrive in fragments, by index
        raw = request.raw_prompt is not None
        try:
            async for chunk in stream:
                usage = chunk.usage if chunk.usage is not None else usage
                for choice in chunk.choices:
                    for event in _choice_events(choice, raw, calls):
                        yield event
                    finish = choice.finish_reason or finish
        except LollmsError:
            raise
        except Exception as exc:
            raise self._map(exc) from None
        finally:
            await stream.close()
        for index in sorted(calls):
            call = calls[index]
            yield ToolCall(call["id"] or f"call_{index}", call["name"], call["arguments"])
        if usage is not None:
            yield Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0)
        yield Finished(finish, {"upstream": safe_url(self.config.base_url)})

    # -- errors ----------------------------------------------------------------------------
    def _map(self, exc: Exception) -> LollmsError:
        """The server's error for an upstream failure; the upstream's text is redacted (and
        the original exception is not chained, so no traceback shows it either)."""
        import openai

        where = f"'{self.instance_name}' ({safe_url(self.config.base_url)})"
        detail = self.redact(str(getattr(exc, "message", exc)))
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return BindingAuthError(
                f"The upstream server of {where} refused the binding's "
                f"API key (HTTP {exc.status_code})."
            )
        if isinstance(exc, openai.NotFoundError):
            return NotFound(
                f"The upstream server of {where} answered 404: {detail}", param="model_name"
            )
        if isinstance(exc, openai.APIStatusError):
            retry = exc.response.headers.get("retry-after")
            if exc.status_code == 429 or exc.status_code >= 500:
                return BindingUnavailable(
                    f"The upstream server of {where} answered HTTP {exc.status_code}.",
                    retry_after=int(retry) if retry and retry.isdigit() else None,
                )
            if exc.status_code in (400, 422):
                return BadRequest(f"The upstream server of {where} rejected the request: {detail}")
            return GenerationFailed(f"The upstream server of {where} failed: {detail}")
        if isinstance(exc, openai.APITimeoutError):
            return BindingUnavailable(f"The upstream server of {where} timed out.")
        if isinstance(exc, openai.APIConnectionError):
            return BindingUnavailable(f"Cannot reach the upstream server of {where}.")
        return GenerationFailed(f"Upstream error from {where}: {type(exc).__name__}: {detail}")


def _choice_events(choice: Any, raw: bool, calls: dict[int, dict[str, str]]) -> list[Event]:
    """The text and thoughts in one streamed choice; tool-call fragments join ``calls``."""
    if raw:
        return [TextDelta(choice.text)] if choice.text else []
    delta = choice.delta
    events: list[Event] = []
    thoughts = getattr(delta, "reasoning_content", None) or getattr(delta, "reasoning", None)
    if thoughts:
        events.append(ThoughtsDelta(thoughts))
    if delta.content:
        events.append(TextDelta(delta.content))
    for part in delta.tool_calls or ():
        call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = part.id or call["id"]
        if part.function is not None:
            call["name"] += part.function.name or ""
            call["arguments"] += part.function.arguments or ""
    return events
