"""The model-host wire format: newline-delimited JSON between the server and a host process.

One module for both sides, so that what one writes the other reads: requests, events and
errors each have one encoder and one decoder here.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from pydantic import SecretStr

from lollms_server import errors
from lollms_server.bindings.base import BindingConfig
from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    Step,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.types import (
    BindingRequest,
    EmbeddingResult,
    MediaOptions,
    MediaPart,
    Message,
    SamplingParams,
)

__all__ = [
    "config_to_wire",
    "decode",
    "embedding_from_wire",
    "embedding_to_wire",
    "encode",
    "error_from_wire",
    "error_to_wire",
    "event_from_wire",
    "event_to_wire",
    "request_from_wire",
    "request_to_wire",
]


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode("utf-8") + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("model host message is not an object")
    return value


def config_to_wire(config: BindingConfig) -> dict[str, Any]:
    """The instance's settings with secrets revealed: the host needs the real values."""
    out: dict[str, Any] = {}
    for name in type(config).model_fields:
        value = getattr(config, name)
        out[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return json.loads(json.dumps(out, default=str))  # type: ignore[no-any-return]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_to_wire(request: BindingRequest) -> dict[str, Any]:
    p = request.params
    return {
        "model": request.model,
        "generation_type": request.generation_type,
        "messages": [
            {
                "role": m.role,
                "content": m.content,
                "media": [
                    {"kind": x.kind, "data": _b64(x.data), "mime_type": x.mime_type}
                    for x in m.media
                ],
                "tool_calls": [dict(c) for c in m.tool_calls],
                "tool_call_id": m.tool_call_id,
            }
            for m in request.messages
        ],
        "raw_prompt": request.raw_prompt,
        "params": {
            "temperature": p.temperature,
            "top_p": p.top_p,
            "top_k": p.top_k,
            "repeat_penalty": p.repeat_penalty,
            "max_tokens": p.max_tokens,
            "seed": p.seed,
            "stop": list(p.stop),
        },
        "extra": dict(request.extra),
        "keep_alive": request.keep_alive,
        "tools": [dict(t) for t in request.tools],
        "tool_choice": request.tool_choice,
        "media": request.media.model_dump(exclude_unset=True),
        "json_schema": None if request.json_schema is None else dict(request.json_schema),
        "stream": request.stream,
    }


def request_from_wire(data: dict[str, Any]) -> BindingRequest:
    params = dict(data["params"])
    params["stop"] = tuple(params.get("stop") or ())
    return BindingRequest(
        model=data["model"],
        generation_type=data["generation_type"],
        messages=tuple(
            Message(
                m["role"],
                m["content"],
                tuple(
                    MediaPart(x["kind"], base64.b64decode(x["data"]), x["mime_type"])
                    for x in m["media"]
                ),
                tuple(m.get("tool_calls") or ()),
                m.get("tool_call_id"),
            )
            for m in data["messages"]
        ),
        raw_prompt=data["raw_prompt"],
        params=SamplingParams(**params),
        extra=data["extra"],
        keep_alive=data.get("keep_alive"),
        tools=tuple(data.get("tools") or ()),
        tool_choice=data.get("tool_choice"),
        media=MediaOptions.model_validate(data.get("media") or {}),
        json_schema=data.get("json_schema"),
        stream=data.get("stream", True),
    )


def event_to_wire(event: Event) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"k": "text", "t": event.text}
    if isinstance(event, ThoughtsDelta):
        return {"k": "thoughts", "t": event.text}
    if isinstance(event, Usage):
        return {"k": "usage", "p": event.prompt_tokens, "c": event.completion_tokens}
    if isinstance(event, Finished):
        return {"k": "finished", "r": event.finish_reason, "m": event.metadata}
    if isinstance(event, MediaOutput):
        return {
            "k": "media",
            "d": _b64(event.data),
            "mime": event.mime_type,
            "kind": event.kind,
            "m": event.metadata,
        }
    if isinstance(event, ToolCall):
        return {"k": "tool", "id": event.id, "name": event.name, "args": event.arguments}
    if isinstance(event, Step):
        return {"k": "step", "kind": event.kind, "t": event.text, "ok": event.ok, "d": event.data}
    raise TypeError(f"{type(event).__name__} is not a binding event")  # workflow-only events


def event_from_wire(data: dict[str, Any]) -> Event:
    kind = data["k"]
    if kind == "text":
        return TextDelta(data["t"])
    if kind == "thoughts":
        return ThoughtsDelta(data["t"])
    if kind == "usage":
        return Usage(data["p"], data["c"])
    if kind == "finished":
        return Finished(data["r"], data.get("m") or {})
    if kind == "media":
        return MediaOutput(
            base64.b64decode(data["d"]), data["mime"], data["kind"], data.get("m") or {}
        )
    if kind == "step":
        return Step(data["kind"], data["t"], data.get("ok"), data.get("d") or {})
    return ToolCall(data["id"], data["name"], data["args"])


def error_to_wire(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, errors.LollmsError):
        out = {"class": type(exc).__name__, "message": exc.message, "param": exc.param}
        retry_after = getattr(exc, "retry_after", None)
        return out if retry_after is None else {**out, "retry_after": retry_after}
    return {"class": "GenerationFailed", "message": f"{type(exc).__name__}: {exc}", "param": None}


def error_from_wire(data: dict[str, Any]) -> errors.LollmsError:
    cls = getattr(errors, str(data.get("class")), None)
    message = str(data.get("message", "model host error"))
    if isinstance(cls, type) and issubclass(cls, errors.LollmsError):
        # The generic constructor (message, param) fits every class without a custom one.
        try:
            error = cls(message, param=data.get("param"))
        except TypeError:
            pass
        else:
            if data.get("retry_after") is not None and hasattr(error, "retry_after"):
                error.retry_after = int(data["retry_after"])
            return error
    return errors.GenerationFailed(message, param=data.get("param"))


def embedding_to_wire(result: EmbeddingResult) -> dict[str, Any]:
    return {"vectors": result.vectors, "tokens": result.tokens, "truncated": result.truncated}


def embedding_from_wire(data: dict[str, Any]) -> EmbeddingResult:
    return EmbeddingResult(data["vectors"], data["tokens"], data.get("truncated", 0))
