"""Ollama binding, on the official ``ollama`` async client.

Ollama loads and unloads its own models; ``keep_alive`` from the request is passed through,
so its memory policy follows the client's. Errors: 401/403 -> ``binding_auth_error``,
404 model -> 404 (or a pull when ``pull_missing`` is on), 5xx -> 503, unreachable -> 503
naming the host. Ollama's text reaches clients and logs only with this instance's secrets (key,
URL credentials) replaced by ``***``.

Client tools go to Ollama's own tool calling: ``tools`` as they are, assistant tool calls
with their arguments as objects, tool results with ``tool_name``; the calls Ollama returns
become ``ToolCall`` events. Ollama has no ``tool_choice``: "none" sends no tools, a named
function sends only that one, "required" cannot be enforced (the tools are offered).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import (
    Event,
    Finished,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, ModelInfo
from lollms_server.errors import (
    BadRequest,
    BindingAuthError,
    BindingUnavailable,
    GenerationFailed,
    LollmsError,
    ModelNotFound,
    NotFound,
)
from lollms_server.security.redact import Redactor, safe_url, url_secrets

if TYPE_CHECKING:
    from ollama import AsyncClient

__all__ = ["OllamaBinding", "OllamaConfig"]

logger = logging.getLogger(__name__)
EXTRA_OPTIONS = frozenset(
    {
        "min_p",
        "typical_p",
        "presence_penalty",
        "frequency_penalty",
        "repeat_last_n",
        "mirostat",
        "mirostat_tau",
        "mirostat_eta",
        "num_ctx",
    }
)


class OllamaConfig(BindingConfig):
    host: str = Field("http://127.0.0.1:11434", description="The Ollama server.")
    api_key: SecretStr | None = Field(None, description="Bearer key, for a protected Ollama.")
    num_ctx: int | None = Field(None, ge=1, description="Context size sent with every request.")
    pull_missing: bool = Field(False, description="Pull a model the server lacks, then run it.")
    timeout: float = Field(600.0, gt=0)
    max_concurrency: int = Field(4, ge=1)


class OllamaBinding(Binding[OllamaConfig]):
    name: ClassVar[str] = "ollama"
    holds_models: ClassVar[bool] = False  # a client of a remote server
    description: ClassVar[str] = "Models served by an Ollama server."
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=True, vision=True, structured_output=True, tools=True
    )
    extra_parameters: ClassVar[frozenset[str] | None] = EXTRA_OPTIONS

    def __init__(self, config: OllamaConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self._client: AsyncClient | None = None
        key = self.config.api_key.get_secret_value() if self.config.api_key else None
        self.redact = Redactor([key, *url_secrets(self.config.host)])

    def client(self) -> AsyncClient:
        if self._client is None:
            try:
                from ollama import AsyncClient
            except ImportError as exc:
                raise BindingUnavailable(
                    "The ollama package is not installed: pip install 'lollms_server[ollama]'"
                ) from exc
            headers = (
                {"Authorization": f"Bearer {self.config.api_key.get_secret_value()}"}
                if self.config.api_key
                else None
            )
            self._client = AsyncClient(
                host=self.config.host, headers=headers, timeout=self.config.timeout
            )
        return self._client

    async def list_models(self) -> list[ModelInfo]:
        try:
            listed = await self.client().list()
        except Exception as exc:
            raise self._map(exc) from None
        out = []
        for model in listed.models:
            details = model.details.model_dump(exclude_none=True) if model.details else {}
            out.append(
                ModelInfo(
                    name=model.model or "",
                    size_bytes=int(model.size or 0),
                    context_size=self.config.num_ctx,
                    details=details,
                )
            )
        return out

    async def model_info(self, model: str) -> ModelInfo:
        try:
            shown = await self.client().show(model)
        except Exception as exc:
            error = self._map(exc)
            if isinstance(error, NotFound):
                if self.config.pull_missing:
                    return ModelInfo(name=model, details={"pull_on_load": True})
                available = [m.name for m in await self.list_models()]
                raise ModelNotFound(model, self.instance_name, available) from None
            raise error from None
        info = dict(shown.modelinfo or {})
        context = next(
            (
                int(v)
                for k, v in info.items()
                if k.endswith("context_length") and isinstance(v, int)
            ),
            None,
        )
        details = shown.details.model_dump(exclude_none=True) if shown.details else {}
        return ModelInfo(name=model, context_size=self.config.num_ctx or context, details=details)

    def max_concurrency(self, model: str) -> int:
        return self.config.max_concurrency

    def memory_estimate(self, model: str) -> int | None:
        return 0  # Ollama runs the model in its own process and budget

    async def load(self, model: str) -> None:
        if not self.config.pull_missing:
            return
        try:
            await self.client().show(model)
        except Exception as exc:
            if not isinstance(self._map(exc), NotFound):
                raise self._map(exc) from None
            logger.info("Pulling '%s' on %s", model, safe_url(self.config.host))
            try:
                async for progress in await self.client().pull(model, stream=True):
                    if progress.total:
                        logger.info(
                            "Pulling '%s': %s %d/%d",
                            model,
                            self.redact(str(progress.status)),
                            progress.completed or 0,
                            progress.total,
                        )
            except Exception as pull_exc:
                raise self._map(pull_exc) from None

    async def unload(self, model: str) -> None:
        return None

    async def close(self) -> None:
        self._client = None

    def _options(self, request: BindingRequest) -> dict[str, Any]:
        p = request.params
        options: dict[str, Any] = {
            k: v
            for k, v in (
                ("temperature", p.temperature),
                ("top_p", p.top_p),
                ("top_k", p.top_k),
                ("repeat_penalty", p.repeat_penalty),
                ("num_predict", p.max_tokens),
                ("seed", p.seed),
            )
            if v is not None
        }
        if p.stop:
            options["stop"] = list(p.stop)
        if self.config.num_ctx:
            options["num_ctx"] = self.config.num_ctx
        options.update({k: v for k, v in request.extra.items() if k in EXTRA_OPTIONS})
        return options

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        client = self.client()
        common: dict[str, Any] = {
            "model": request.model,
            "stream": True,
            "options": self._options(request),
        }
        if request.json_schema is not None:
            common["format"] = dict(request.json_schema)
        if request.keep_alive is not None:
            common["keep_alive"] = request.keep_alive
        raw = request.raw_prompt is not None
        final: Any = None
        calls: list[ToolCall] = []
        try:
            if request.raw_prompt is not None:
                stream: Any = await client.generate(prompt=request.raw_prompt, raw=True, **common)
            else:
                tools = _offered_tools(request)
                if tools:
                    common["tools"] = tools
                messages = _wire_messages(request.messages)
                stream = await client.chat(messages=messages, **common)
            async for part in stream:
                for event in _part_events(part, raw, calls):
                    yield event
                if part.done:
                    final = part
        except LollmsError:
            raise
        except Exception as exc:
            raise self._map(exc) from None
        for call in calls:
            yield call
        if final is not None:
            yield Usage(final.prompt_eval_count or 0, final.eval_count or 0)
        reason = getattr(final, "done_reason", None) or "stop"
        reason = reason if reason in ("stop", "length") else "stop"
        yield Finished("tool_calls" if calls else reason, {"upstream": safe_url(self.config.host)})

    def _map(self, exc: Exception) -> LollmsError:
        import httpx
        import ollama

        where = f"'{self.instance_name}' ({safe_url(self.config.host)})"
        if isinstance(exc, ollama.ResponseError):
            status, detail = exc.status_code, self.redact(str(exc.error))
            if status in (401, 403):
                return BindingAuthError(f"The Ollama server of {where} refused the key.")
            if status == 404:
                return NotFound(f"Ollama at {where}: {detail}", param="model_name")
            if status >= 500 or status == 429:
                return BindingUnavailable(f"Ollama at {where} answered {status}: {detail}")
            if status in (400, 422):
                return BadRequest(f"Ollama at {where} rejected the request: {detail}")
            return GenerationFailed(f"Ollama at {where} failed ({status}): {detail}")
        if isinstance(exc, httpx.TransportError | ConnectionError):
            return BindingUnavailable(f"Cannot reach the Ollama server of {where}.")
        detail = self.redact(f"{type(exc).__name__}: {exc}")
        return GenerationFailed(f"Ollama error from {where}: {detail}")


def _part_events(part: Any, raw: bool, calls: list[ToolCall]) -> list[Event]:
    """The text and thoughts of one streamed part; its tool calls join ``calls``."""
    if raw:
        text, thinking = part.response, part.thinking
    else:
        text, thinking = part.message.content, part.message.thinking
        for call in part.message.tool_calls or ():
            arguments = dict(call.function.arguments or {})
            calls.append(
                ToolCall(f"call_{uuid.uuid4().hex[:24]}", call.function.name, json.dumps(arguments))
            )
    events: list[Event] = []
    if thinking:
        events.append(ThoughtsDelta(thinking))
    if text:
        events.append(TextDelta(text))
    return events


def _tool_name(tool: Mapping[str, Any]) -> str:
    function = tool.get("function")
    return str(function.get("name") or "") if isinstance(function, Mapping) else ""


def _offered_tools(request: BindingRequest) -> list[dict[str, Any]]:
    """The tools sent to Ollama, which has no tool_choice: none for "none", only the named
    one for a named choice."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return []
    tools = [dict(t) for t in request.tools]
    if isinstance(choice, Mapping):
        named = choice.get("function")
        name = named.get("name") if isinstance(named, Mapping) else choice.get("name")
        tools = [t for t in tools if _tool_name(t) == name]
        if not tools:
            raise BadRequest(
                f"tool_choice names '{name}', which is not a tool.", param="tool_choice"
            )
    return tools


def _arguments(text: Any) -> Any:
    """Ollama takes a call's arguments as an object (OpenAI's are a JSON string)."""
    if not isinstance(text, str):
        return text or {}
    try:
        return json.loads(text or "{}")
    except ValueError:
        return {"_raw": text}


def _wire_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The conversation in Ollama's shapes (images base64, tool turns by name)."""
    names = {
        str(call.get("id")): str((call.get("function") or {}).get("name", ""))
        for m in messages
        for call in m.tool_calls
    }
    out: list[dict[str, Any]] = []
    for m in messages:
        message: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.media:
            message["images"] = [base64.b64encode(x.data).decode() for x in m.media]
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "function": {
                        "name": (c.get("function") or {}).get("name", ""),
                        "arguments": _arguments((c.get("function") or {}).get("arguments")),
                    }
                }
                for c in m.tool_calls
            ]
        if m.role == "tool" and m.tool_call_id in names:
            message["tool_name"] = names[m.tool_call_id or ""]
        out.append(message)
    return out
