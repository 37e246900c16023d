"""Native API <-> GenerationService translation."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from lollms_server.api.kit.encode import Encoder, Record, encode
from lollms_server.api.kit.media import decode_media
from lollms_server.api.native.schemas import GenerateRequest, GenerationParameters, InputItem
from lollms_server.bindings.events import (
    MediaOutput,
    Step,
    TextDelta,
    TextReplace,
    ThoughtsDelta,
    ToolCall,
    ToolResult,
    Usage,
)
from lollms_server.bindings.media import parse_media
from lollms_server.bindings.types import MediaOptions, MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.run import Run

__all__ = ["NativeEncoder", "response_body", "stream_events", "to_generation_request"]


def _params(p: GenerationParameters) -> SamplingParams:
    return SamplingParams.from_wire(
        temperature=p.temperature,
        top_p=p.top_p,
        top_k=p.top_k,
        repeat_penalty=p.repeat_penalty,
        max_tokens=p.max_tokens or p.n_predict,
        seed=p.seed,
        stop=p.stop,
    )


def _options(p: GenerationParameters) -> tuple[MediaOptions, dict[str, Any] | None, dict[str, Any]]:
    """Media options, the structured-output schema and the engine options of ``parameters``."""
    media, extra = parse_media(p.model_extra or {})
    schema = extra.pop("json_schema", None)
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest(
            "parameters.json_schema must be an object.", param="parameters.json_schema"
        )
    return media, schema, extra


def _decode_media(item: InputItem, index: int) -> MediaPart:
    assert item.type != "text"
    param = f"input_data.{index}.data"
    return decode_media(item.data, item.type, param, mime_type=item.mime_type)


def _messages(items: list[InputItem]) -> tuple[Message, ...]:
    """Text items become messages in order. A media item joins the message just before it
    when that one has its role (text, then its image), else the next text of its role
    (an image, then the question about it); media that no text follows form a message."""
    messages: list[Message] = []
    pending: dict[str, list[MediaPart]] = {}
    for index, item in enumerate(items):
        if item.type == "text":
            media = tuple(pending.pop(item.role, ()))
            messages.append(Message(role=item.role, content=item.data, media=media))
            continue
        part = _decode_media(item, index)
        if messages and messages[-1].role == item.role and item.role not in pending:
            last = messages[-1]
            messages[-1] = Message(last.role, last.content, (*last.media, part))
        else:
            pending.setdefault(item.role, []).append(part)
    for role, parts in pending.items():
        messages.append(Message(role=role, content="", media=tuple(parts)))
    return tuple(messages)


def to_generation_request(body: GenerateRequest) -> GenerationRequest:
    params = _params(body.parameters)
    media, schema, extra = _options(body.parameters)
    messages: tuple[Message, ...] = ()
    if body.input_data:
        messages = _messages(body.input_data)
    if body.prompt is not None and not body.raw_prompt:
        messages = (*messages, Message(role="user", content=body.prompt))
    return GenerationRequest(
        generation_type=body.generation_type,
        binding_name=body.binding_name,
        model_name=body.model_name,
        messages=messages,
        raw_prompt=body.prompt if body.raw_prompt else None,
        params=params,
        personality=body.personality,
        queue_timeout=body.queue_timeout,
        keep_alive=body.keep_alive,
        extra=extra,
        media=media,
        json_schema=schema,
        language=body.language,
        user_name=body.user_name,
        personality_config=body.personality_config,
        functions=tuple(body.functions),
        tool_choice=body.tool_choice if body.functions else None,
        max_tool_rounds=body.max_tool_rounds,
    )


def _usage(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _media_item(media: MediaOutput) -> dict[str, Any]:
    return {
        "type": media.kind,
        "data": base64.b64encode(media.data).decode("ascii"),
        "mime_type": media.mime_type,
        "thoughts": None,
        "metadata": media.metadata,
    }


def _output(out: CollectedOutput) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if out.text or out.thoughts or not (out.media or out.tool_calls):
        items.append(
            {
                "type": "text",
                "data": out.text,
                "mime_type": "text/plain",
                "thoughts": out.thoughts or None,
                "metadata": {"finish_reason": out.finish_reason},
            }
        )
    items.extend(_media_item(m) for m in out.media)
    items.extend(
        {
            "type": "tool_call",
            "data": {"id": c.id, "name": c.name, "arguments": c.arguments},
            "mime_type": "application/json",
            "thoughts": None,
            "metadata": {},
        }
        for c in out.tool_calls
    )
    items.extend(
        {
            "type": "tool_result",
            "data": {"id": r.id, "name": r.name, "content": r.content, "ok": r.ok},
            "mime_type": "application/json",
            "thoughts": None,
            "metadata": {},
        }
        for r in out.tool_results
    )
    return items


def _step(step: Step) -> dict[str, Any]:
    return {"kind": step.kind, "text": step.text, "ok": step.ok, "data": step.data}


def response_body(run: Run, out: CollectedOutput) -> dict[str, Any]:
    return {
        "output": _output(out),
        "steps": [_step(s) for s in out.steps],
        "usage": _usage(out.usage),
        "request_id": run.request_id,
        "binding_name": run.binding.instance_name,
        "model_name": run.model,
        "timings": run.timings(),
    }


class NativeEncoder(Encoder):
    """The native stream: chunk / set_content / thoughts / media / tool_call / tool_result /
    step records, then ``final`` (the whole answer, media not repeated)."""

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run

    def text(self, event: TextDelta) -> Record:
        return {"type": "chunk", "content": event.text}

    def replaced(self, event: TextReplace) -> Record:
        return {"type": "set_content", "content": event.text}  # the client replaces it

    def thoughts(self, event: ThoughtsDelta) -> Record:
        return {"type": "thoughts", "content": event.text}

    def media(self, event: MediaOutput) -> Record:
        return {**_media_item(event), "type": "media", "kind": event.kind}

    def tool_call(self, event: ToolCall, index: int) -> Record:
        return {
            "type": "tool_call",
            "id": event.id,
            "name": event.name,
            "arguments": event.arguments,
        }

    def tool_result(self, event: ToolResult) -> Record:
        return {
            "type": "tool_result",
            "id": event.id,
            "name": event.name,
            "content": event.content,
            "ok": event.ok,
        }

    def step(self, event: Step) -> Record:
        return {"type": "step", **_step(event)}

    def closing(self, out: CollectedOutput) -> list[Record]:
        body = response_body(self.run, out)
        for item in body["output"]:  # media were sent whole in their own events: not twice
            if item["type"] in ("image", "audio", "video"):
                item["data"] = None
                item["metadata"] = {**item["metadata"], "sent_in_media_event": True}
        return [{"type": "final", **body}]


def stream_events(run: Run) -> AsyncIterator[Record]:
    """The native stream of ``run`` (see :class:`NativeEncoder`)."""
    return encode(run, NativeEncoder(run))
