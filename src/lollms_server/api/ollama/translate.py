"""Ollama ``/api`` <-> GenerationService translation."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lollms_server.api.kit.encode import Encoder, Record, encode
from lollms_server.api.kit.media import decode_media
from lollms_server.api.ollama.schemas import ChatRequest, GenerateRequest, OllamaMessage, _Common
from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import (
    TextDelta,
    ThoughtsDelta,
    ToolCall,
)
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.run import Run

__all__ = [
    "OllamaRecords",
    "answer",
    "chat_request",
    "generate_request",
    "now_iso",
    "parse_keep_alive",
    "stream",
]

_DURATION = re.compile(r"(-?[0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 0.001, "s": 1, "m": 60, "h": 3600}
logger = logging.getLogger(__name__)


class _Options(BaseModel):
    """The options that change sampling, typed. Ollama ignores options it does not know (it
    logs them): so does this, since clients send many (lollms_client always sends ``think``;
    the ollama SDK's own Options type has ``tfs_z``, ``penalize_newline``...). Options that
    size or place the model (``num_ctx``, ``num_gpu``, ``num_thread``...) are fixed per
    binding instance in config.toml and are ignored the same way."""

    model_config = ConfigDict(extra="allow")

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    num_predict: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    min_p: float | None = None
    typical_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repeat_last_n: int | None = None
    mirostat: int | None = None
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None


_EXTRA = (
    "min_p",
    "typical_p",
    "presence_penalty",
    "frequency_penalty",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_keep_alive(value: float | str | None) -> float | None:
    """Ollama's keep_alive: seconds, or a Go duration such as "5m" or "1h30m"; negative =
    forever."""
    if value is None or isinstance(value, int | float):
        return None if value is None else (-1.0 if value < 0 else float(value))
    text = value.strip()
    if re.fullmatch(r"-?[0-9]*\.?[0-9]+", text):  # a bare number: seconds
        seconds = float(text)
    elif text and _DURATION.sub("", text) == "":
        seconds = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
    else:
        raise BadRequest(
            f"keep_alive '{value}' is not a duration (examples: 300, '5m', '1h30m', '-1')",
            param="keep_alive",
        )
    return -1.0 if seconds < 0 else seconds


def _schema(body: _Common) -> dict[str, Any] | None:
    """Ollama's ``format``: "json" (any object) or a JSON schema."""
    if not body.format:
        return None
    if body.format == "json":
        return {"type": "object"}
    if not isinstance(body.format, dict):
        raise BadRequest("format must be 'json' or a JSON schema object.", param="format")
    return body.format


def _options(body: _Common) -> tuple[SamplingParams, dict[str, Any]]:
    try:
        options = _Options.model_validate(body.options or {})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"options.{name}: {first['msg']}", param=f"options.{name}") from None
    if options.model_extra:
        logger.debug("Ollama options ignored: %s", ", ".join(sorted(options.model_extra)))
    params = SamplingParams.from_wire(
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        repeat_penalty=options.repeat_penalty,
        max_tokens=options.num_predict,
        seed=options.seed,
        stop=options.stop,
    )
    extra = {k: getattr(options, k) for k in _EXTRA if getattr(options, k) is not None}
    return params, extra


def _tool_call(event: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(event.arguments) if event.arguments else {}
    except ValueError:
        arguments = event.arguments  # not JSON: passed on as the model wrote it
    return {"id": event.id, "function": {"name": event.name, "arguments": arguments}}


def _images(images: list[str] | None) -> tuple[MediaPart, ...]:
    return tuple(decode_media(image, "image", "images") for image in images or ())


def generate_request(body: GenerateRequest, binding: Binding, model: str) -> GenerationRequest:
    if body.suffix:
        raise BadRequest("'suffix' (fill-in-the-middle) is not supported.", param="suffix")
    params, extra = _options(body)
    common = {
        "binding_name": binding.instance_name,
        "model_name": model,
        "params": params,
        "keep_alive": parse_keep_alive(body.keep_alive),
        "extra": extra,
        "json_schema": _schema(body),
    }
    if body.raw:
        return GenerationRequest(raw_prompt=body.prompt, **common)  # type: ignore[arg-type]
    messages = ((Message("system", body.system),) if body.system else ()) + (
        Message("user", body.prompt, _images(body.images)),
    )
    return GenerationRequest(messages=messages, **common)  # type: ignore[arg-type]


def chat_request(body: ChatRequest, binding: Binding, model: str) -> GenerationRequest:
    params, extra = _options(body)
    return GenerationRequest(
        binding_name=binding.instance_name,
        model_name=model,
        messages=_chat_messages(body.messages),
        params=params,
        keep_alive=parse_keep_alive(body.keep_alive),
        extra=extra,
        tools=tuple(body.tools or ()),
        json_schema=_schema(body),
    )


def _chat_messages(messages: list[OllamaMessage]) -> tuple[Message, ...]:
    """Ollama's messages in the internal (OpenAI) shape. Ollama's tool calls carry no id and
    its tool turns name the function they answer: ids are made up, and each tool turn takes
    the oldest unanswered call of its function (or of any function when it names none)."""
    out: list[Message] = []
    unanswered: list[tuple[str, str]] = []  # (function name, call id)
    for i, m in enumerate(messages):
        calls = []
        for j, call in enumerate(m.tool_calls or ()):
            function = call.get("function") or {}
            name, arguments = str(function.get("name", "")), function.get("arguments", {})
            call_id = str(call.get("id") or f"call_{i}_{j}")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    },
                }
            )
            unanswered.append((name, call_id))
        answers = m.tool_call_id
        if m.role == "tool" and answers is None and unanswered:
            match = next((c for c in unanswered if c[0] == m.tool_name), unanswered[0])
            answers = match[1]
        unanswered = [c for c in unanswered if c[1] != answers]
        out.append(Message(m.role, m.content, _images(m.images), tuple(calls), answers))
    return tuple(out)


class OllamaRecords(Encoder):
    """Ollama records: one per piece, then the ``done`` record with counts and durations.
    ``think=False`` leaves the model's thoughts out, as Ollama does."""

    def __init__(self, run: Run, model_id: str, chat: bool, think: bool | str | None) -> None:
        super().__init__()
        self.run, self.model_id, self.chat, self.think = run, model_id, chat, think

    def _piece(self, content: str, thinking: str | None = None) -> Record:
        if self.chat:
            body: Record = {"role": "assistant", "content": content}
            if thinking is not None:
                body["thinking"] = thinking
            return {"model": self.model_id, "created_at": now_iso(), "message": body, "done": False}
        record = {"model": self.model_id, "created_at": now_iso(), "response": content}
        if thinking is not None:
            record["thinking"] = thinking
        return {**record, "done": False}

    def text(self, event: TextDelta) -> Record:
        return self._piece(event.text)

    def thoughts(self, event: ThoughtsDelta) -> Record | None:
        return None if self.think is False else self._piece("", event.text)

    def tool_call(self, event: ToolCall, index: int) -> Record | None:
        if not self.chat:
            return None
        message = {"role": "assistant", "content": "", "tool_calls": [_tool_call(event)]}
        return {"model": self.model_id, "created_at": now_iso(), "message": message, "done": False}

    def closing(self, out: CollectedOutput) -> list[Record]:
        return [self.done(out, whole=False)]

    def done(self, out: CollectedOutput, whole: bool) -> Record:
        """The last record; ``whole``: it carries the whole answer (a non-streamed reply)."""
        final = {"model": self.model_id, "created_at": now_iso(), "done": True}
        final.update(_counts(self.run, out))
        thinking = out.thoughts if whole and out.thoughts and self.think is not False else None
        if self.chat:
            message: Record = {"role": "assistant", "content": out.text if whole else ""}
            if thinking:
                message["thinking"] = thinking
            if whole and out.tool_calls:
                message["tool_calls"] = [_tool_call(c) for c in out.tool_calls]
            final["message"] = message
        else:
            final["response"] = out.text if whole else ""
            if thinking:
                final["thinking"] = thinking
        return final


def _counts(run: Run, out: CollectedOutput) -> Record:
    """Ollama's counts and durations (ns), from the run's own timings."""
    now = time.perf_counter()
    begun = run.started + run.queue_ms / 1000  # when the engine got the request
    first = begun if run.first_token_ms is None else run.started + run.first_token_ms / 1000
    load_ns = int(run.queue_ms * 1e6)
    reason = out.finish_reason
    return {
        "done_reason": reason if reason in ("stop", "length") else "stop",
        "total_duration": load_ns + int((now - begun) * 1e9),
        "load_duration": load_ns,
        "prompt_eval_count": out.usage.prompt_tokens if out.usage else 0,
        "prompt_eval_duration": int(max(first - begun, 0) * 1e9),
        "eval_count": out.usage.completion_tokens if out.usage else 0,
        "eval_duration": int(max(now - first, 0) * 1e9),
    }


def stream(
    run: Run, model_id: str, chat: bool, think: bool | str | None = None
) -> AsyncIterator[Record]:
    """The Ollama stream of ``run`` (see :class:`OllamaRecords`)."""
    return encode(run, OllamaRecords(run, model_id, chat, think))


def answer(
    run: Run, out: CollectedOutput, model_id: str, chat: bool, think: bool | str | None = None
) -> Record:
    """The non-streamed Ollama reply: the ``done`` record with the whole answer."""
    return OllamaRecords(run, model_id, chat, think).done(out, whole=True)
