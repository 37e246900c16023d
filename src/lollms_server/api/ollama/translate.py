"""Ollama ``/api`` <-> GenerationService translation."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from lollms_server.api.ollama.schemas import ChatRequest, GenerateRequest, OllamaMessage, _Common
from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import (
    Finished,
    TextDelta,
    TextReplace,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest, UnsupportedCapability
from lollms_server.generation.service import GenerationRequest, Run

__all__ = ["chat_request", "generate_request", "now_iso", "parse_keep_alive", "stream"]

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


def _options(body: _Common, binding: Binding) -> tuple[SamplingParams, dict[str, Any]]:
    try:
        options = _Options.model_validate(body.options or {})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"options.{name}: {first['msg']}", param=f"options.{name}") from None
    if options.model_extra:
        logger.debug("Ollama options ignored: %s", ", ".join(sorted(options.model_extra)))
    stop = options.stop or ()
    params = SamplingParams(
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        repeat_penalty=options.repeat_penalty,
        max_tokens=options.num_predict if (options.num_predict or -1) > 0 else None,
        seed=options.seed,
        stop=(stop,) if isinstance(stop, str) else tuple(stop),
    )
    extra = {k: getattr(options, k) for k in _EXTRA if getattr(options, k) is not None}
    if body.format:
        if not binding.capabilities.structured_output:
            raise UnsupportedCapability(
                f"Binding instance '{binding.instance_name}' cannot constrain output.",
                param="format",
            )
        extra["json_schema"] = {"type": "object"} if body.format == "json" else body.format
    return params, extra


def _tool_call(event: ToolCall) -> dict[str, Any]:
    try:
        arguments = json.loads(event.arguments) if event.arguments else {}
    except ValueError:
        arguments = event.arguments  # not JSON: passed on as the model wrote it
    return {"id": event.id, "function": {"name": event.name, "arguments": arguments}}


def _images(images: list[str] | None) -> tuple[MediaPart, ...]:
    parts = []
    for image in images or ():
        try:
            parts.append(MediaPart("image", base64.b64decode(image, validate=True), "image/png"))
        except (binascii.Error, ValueError):
            raise BadRequest("images must be base64 strings", param="images") from None
    return tuple(parts)


def generate_request(body: GenerateRequest, binding: Binding, model: str) -> GenerationRequest:
    if body.suffix:
        raise BadRequest("'suffix' (fill-in-the-middle) is not supported.", param="suffix")
    params, extra = _options(body, binding)
    common = {
        "binding_name": binding.instance_name,
        "model_name": model,
        "params": params,
        "keep_alive": parse_keep_alive(body.keep_alive),
        "extra": extra,
    }
    if body.raw:
        return GenerationRequest(raw_prompt=body.prompt, **common)  # type: ignore[arg-type]
    messages = ((Message("system", body.system),) if body.system else ()) + (
        Message("user", body.prompt, _images(body.images)),
    )
    return GenerationRequest(messages=messages, **common)  # type: ignore[arg-type]


def chat_request(body: ChatRequest, binding: Binding, model: str) -> GenerationRequest:
    if body.tools and not binding.capabilities.tools:
        raise UnsupportedCapability(
            f"Binding instance '{binding.instance_name}' cannot call tools.", param="tools"
        )
    params, extra = _options(body, binding)
    return GenerationRequest(
        binding_name=binding.instance_name,
        model_name=model,
        messages=_chat_messages(body.messages),
        params=params,
        keep_alive=parse_keep_alive(body.keep_alive),
        extra=extra,
        tools=tuple(body.tools or ()),
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


async def stream(
    run: Run, model_id: str, chat: bool, think: bool | str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Ollama records: one per piece, then the ``done`` record with counts and durations.
    ``think=False`` leaves the model's thoughts out, as Ollama does."""
    usage: Usage | None = None
    reason = "stop"
    first_ns: int | None = None
    started_ns = time.perf_counter_ns()
    for_chat = "message" if chat else "response"
    async for event in run:
        if type(event) is TextReplace:  # cannot be undone in a stream: shown after it
            event = TextDelta(f"\n\n{event.text}")
        if type(event) is ThoughtsDelta and think is False:
            continue
        if type(event) is ToolCall and chat:
            first_ns = first_ns or time.perf_counter_ns()
            yield {
                "model": model_id,
                "created_at": now_iso(),
                "message": {"role": "assistant", "content": "", "tool_calls": [_tool_call(event)]},
                "done": False,
            }
        elif type(event) is TextDelta or type(event) is ThoughtsDelta:
            first_ns = first_ns or time.perf_counter_ns()
            thinking = type(event) is ThoughtsDelta
            if chat:
                body: dict[str, Any] = {
                    "role": "assistant",
                    "content": "" if thinking else event.text,
                }
                if thinking:
                    body["thinking"] = event.text
                yield {"model": model_id, "created_at": now_iso(), for_chat: body, "done": False}
            else:
                key = "thinking" if thinking else "response"
                yield {
                    "model": model_id,
                    "created_at": now_iso(),
                    "response": "",
                    key: event.text,
                    "done": False,
                }
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished):
            reason = event.finish_reason
    end_ns = time.perf_counter_ns()
    load_ns = int(run.queue_ms * 1e6)
    prompt_ns = (first_ns or end_ns) - started_ns
    final: dict[str, Any] = {
        "model": model_id,
        "created_at": now_iso(),
        "done": True,
        "done_reason": reason if reason in ("stop", "length") else "stop",
        "total_duration": load_ns + (end_ns - started_ns),
        "load_duration": load_ns,
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
        "prompt_eval_duration": prompt_ns,
        "eval_count": usage.completion_tokens if usage else 0,
        "eval_duration": end_ns - (first_ns or end_ns),
    }
    final[for_chat] = {"role": "assistant", "content": ""} if chat else ""
    yield final
