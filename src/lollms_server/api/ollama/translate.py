"""Ollama ``/api`` <-> GenerationService translation."""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from lollms_server.api.ollama.schemas import ChatRequest, GenerateRequest, _Common
from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import Finished, TextDelta, TextReplace, ThoughtsDelta, Usage
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest, UnsupportedCapability
from lollms_server.generation.service import GenerationRequest, Run

__all__ = ["chat_request", "generate_request", "now_iso", "parse_keep_alive", "stream"]

_DURATION = re.compile(r"^(-?[0-9.]+)(ms|s|m|h)?$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
# Options that size or place the model: fixed per binding instance in config.toml, so a
# request cannot change them; accepted (Ollama clients send them) and reported by /api/show.
_PLACEMENT = {"num_ctx", "num_gpu", "num_thread", "num_batch", "main_gpu", "use_mmap",
              "use_mlock", "numa", "low_vram", "num_keep"}
_EXTRA = {"min_p", "typical_p", "presence_penalty", "frequency_penalty", "repeat_last_n",
          "mirostat", "mirostat_tau", "mirostat_eta"}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_keep_alive(value: float | str | None) -> float | None:
    """Ollama's keep_alive: seconds, or a duration such as "5m"; negative = forever."""
    if value is None or isinstance(value, int | float):
        return None if value is None else (-1.0 if value < 0 else float(value))
    match = _DURATION.match(value.strip())
    if not match:
        raise BadRequest(f"keep_alive '{value}' is not a duration (examples: 300, '5m', '-1')",
                         param="keep_alive")
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    return -1.0 if seconds < 0 else seconds


def _options(body: _Common, binding: Binding) -> tuple[SamplingParams, dict[str, Any]]:
    options = dict(body.options or {})
    unknown = sorted(set(options) - _PLACEMENT - _EXTRA - {
        "temperature", "top_k", "top_p", "repeat_penalty", "num_predict", "seed", "stop"})
    if unknown:
        raise BadRequest(f"Unknown option(s): {', '.join(unknown)}.", param="options")
    stop = options.get("stop") or ()
    params = SamplingParams(
        temperature=options.get("temperature"), top_p=options.get("top_p"),
        top_k=options.get("top_k"), repeat_penalty=options.get("repeat_penalty"),
        max_tokens=(options.get("num_predict") if (options.get("num_predict") or -1) > 0
                    else None),
        seed=options.get("seed"), stop=(stop,) if isinstance(stop, str) else tuple(stop))
    extra = {k: v for k, v in options.items() if k in _EXTRA}
    if body.format:
        if not binding.capabilities.structured_output:
            raise UnsupportedCapability(
                f"Binding instance '{binding.instance_name}' cannot constrain output.",
                param="format")
        extra["json_schema"] = {"type": "object"} if body.format == "json" else body.format
    return params, extra


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
    common = {"binding_name": binding.instance_name, "model_name": model, "params": params,
              "keep_alive": parse_keep_alive(body.keep_alive), "extra": extra}
    if body.raw:
        return GenerationRequest(raw_prompt=body.prompt, **common)  # type: ignore[arg-type]
    messages = ((Message("system", body.system),) if body.system else ()) + (
        Message("user", body.prompt, _images(body.images)),)
    return GenerationRequest(messages=messages, **common)  # type: ignore[arg-type]


def chat_request(body: ChatRequest, binding: Binding, model: str) -> GenerationRequest:
    if body.tools and not binding.capabilities.tools:
        raise UnsupportedCapability(
            f"Binding instance '{binding.instance_name}' cannot call tools.", param="tools")
    params, extra = _options(body, binding)
    messages = tuple(Message(m.role, m.content, _images(m.images)) for m in body.messages)
    return GenerationRequest(
        binding_name=binding.instance_name, model_name=model, messages=messages, params=params,
        keep_alive=parse_keep_alive(body.keep_alive), extra=extra)


async def stream(run: Run, model_id: str, chat: bool) -> AsyncIterator[dict[str, Any]]:
    """Ollama records: one per piece, then the ``done`` record with counts and durations."""
    usage: Usage | None = None
    reason = "stop"
    first_ns: int | None = None
    started_ns = time.perf_counter_ns()
    for_chat = "message" if chat else "response"
    async for event in run:
        if type(event) is TextReplace:  # cannot be undone in a stream: shown after it
            event = TextDelta(f"\n\n{event.text}")
        if type(event) is TextDelta or type(event) is ThoughtsDelta:
            first_ns = first_ns or time.perf_counter_ns()
            thinking = type(event) is ThoughtsDelta
            if chat:
                body: dict[str, Any] = {"role": "assistant", "content": "" if thinking
                                        else event.text}
                if thinking:
                    body["thinking"] = event.text
                yield {"model": model_id, "created_at": now_iso(), for_chat: body,
                       "done": False}
            else:
                key = "thinking" if thinking else "response"
                yield {"model": model_id, "created_at": now_iso(), "response": "",
                       key: event.text, "done": False}
        elif isinstance(event, Usage):
            usage = event
        elif isinstance(event, Finished):
            reason = event.finish_reason
    end_ns = time.perf_counter_ns()
    load_ns = int(run.queue_ms * 1e6)
    prompt_ns = (first_ns or end_ns) - started_ns
    final: dict[str, Any] = {
        "model": model_id, "created_at": now_iso(), "done": True,
        "done_reason": reason if reason in ("stop", "length") else "stop",
        "total_duration": load_ns + (end_ns - started_ns), "load_duration": load_ns,
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
        "prompt_eval_duration": prompt_ns,
        "eval_count": usage.completion_tokens if usage else 0,
        "eval_duration": end_ns - (first_ns or end_ns),
    }
    final[for_chat] = {"role": "assistant", "content": ""} if chat else ""
    yield final
