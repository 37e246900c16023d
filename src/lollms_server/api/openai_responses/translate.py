"""OpenAI Responses API <-> GenerationService translation.

A request's ``input`` (a string, or messages, ``function_call`` and ``function_call_output``
items) becomes the conversation, after the stored one of ``previous_response_id``;
``instructions`` lead as a system message (never stored: each request gives its own). The
answer is a list of output items: one ``message`` with the text, one ``function_call`` per
tool call. Streamed, each run event becomes a batch of typed events (``response.created``,
``response.output_text.delta``, ``response.function_call_arguments.done``...).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from lollms_server.api.kit.encode import Encoder, Record
from lollms_server.api.kit.media import decode_media
from lollms_server.api.openai_responses.schemas import ResponseRequest
from lollms_server.bindings.events import TextDelta, ToolCall, Usage
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.requests import GenerationRequest

__all__ = [
    "ResponseEvents",
    "conversation",
    "generation_request",
    "output_messages",
    "response_body",
]

Done = Callable[[CollectedOutput, dict[str, Any]], None]  # (answer, final response object)


# -- request -----------------------------------------------------------------------------------
def _refuse_unsupported(body: ResponseRequest) -> None:
    if body.background:
        raise BadRequest("background responses are not supported.", param="background")
    if body.top_logprobs:
        raise BadRequest(
            "top_logprobs is not supported: no binding of this server returns token probabilities.",
            param="top_logprobs",
        )


def _tool(tool: dict[str, Any], index: int) -> dict[str, Any]:
    """A Responses function tool in the chat shape the bindings take."""
    if tool.get("type") != "function" or not tool.get("name"):
        raise BadRequest(
            f"Tool type '{tool.get('type')}' is not supported: only function tools (with a "
            "name), which the client runs.",
            param=f"tools.{index}",
        )
    function = {k: tool[k] for k in ("name", "description", "parameters") if tool.get(k)}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any] | None) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and choice.get("name"):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise BadRequest("tool_choice must be auto, none, required or a function.", param="tool_choice")


def _schema(body: ResponseRequest) -> dict[str, Any] | None:
    """The schema ``text.format`` holds the answer to (None: free text)."""
    fmt = (body.text.format if body.text else None) or {"type": "text"}
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object"}
    if kind != "json_schema":
        raise BadRequest(f"Unknown text.format type '{kind}'.", param="text.format")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise BadRequest("text.format.schema must be an object.", param="text.format.schema")
    return schema


def _text_of(content: Any, where: str) -> tuple[str, tuple[MediaPart, ...]]:
    """The text and images of a message's content (a string or a list of parts)."""
    if content is None or isinstance(content, str):
        return content or "", ()
    if not isinstance(content, list):
        raise BadRequest("content must be a string or a list of parts.", param=where)
    texts: list[str] = []
    media: list[MediaPart] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            texts.append(str(part.get("text") or part.get("refusal") or ""))
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            media.append(decode_media(part["image_url"], "image", where, data_url_only=True))
        else:
            raise BadRequest(f"Unsupported content part type '{kind}'.", param=where)
    return "\n".join(texts), tuple(media)


def _add_item(messages: list[Message], item: Any, index: int) -> None:
    """Add one ``input`` item to the conversation."""
    where = f"input.{index}"
    if not isinstance(item, dict):
        raise BadRequest("Each input item must be an object.", param=where)
    kind = item.get("type", "message")
    if kind == "function_call":
        call = {
            "id": str(item.get("call_id") or item.get("id") or ""),
            "type": "function",
            "function": {"name": item.get("name", ""), "arguments": item.get("arguments", "")},
        }
        last = messages[-1] if messages else None
        if last is not None and last.role == "assistant":  # its calls, in one turn
            messages[-1] = dataclasses.replace(last, tool_calls=(*last.tool_calls, call))
        else:
            messages.append(Message("assistant", "", tool_calls=(call,)))
    elif kind == "function_call_output":
        output, _ = _text_of(item.get("output"), f"{where}.output")
        messages.append(Message("tool", output, tool_call_id=str(item.get("call_id", ""))))
    elif kind == "message" and item.get("role") in ("user", "system", "developer", "assistant"):
        text, media = _text_of(item.get("content"), f"{where}.content")
        role = "system" if item["role"] == "developer" else str(item["role"])
        messages.append(Message(role, text, media))
    elif kind != "reasoning":  # the model's reasoning, passed back: not part of the prompt
        raise BadRequest(f"Input item type '{kind}' is not supported.", param=where)


def conversation(body: ResponseRequest, history: tuple[Message, ...]) -> tuple[Message, ...]:
    """The stored conversation, then this request's input (without the instructions)."""
    if isinstance(body.input, str):
        return (*history, Message("user", body.input))
    messages = list(history)
    for index, item in enumerate(body.input):
        _add_item(messages, item, index)
    return tuple(messages)


def generation_request(
    body: ResponseRequest, instance: str, model: str, messages: tuple[Message, ...]
) -> GenerationRequest:
    """What the service runs for ``body`` over ``messages`` (see :func:`conversation`)."""
    _refuse_unsupported(body)
    if body.instructions:
        messages = (Message("system", body.instructions), *messages)
    tools = tuple(_tool(t, i) for i, t in enumerate(body.tools or ()))
    return GenerationRequest(
        binding_name=instance,
        model_name=model,
        messages=messages,
        params=SamplingParams.from_wire(
            temperature=body.temperature, top_p=body.top_p, max_tokens=body.max_output_tokens
        ),
        personality=body.personality,
        tools=tools,
        tool_choice=_tool_choice(body.tool_choice) if tools else None,
        json_schema=_schema(body),
    )


# -- answer ------------------------------------------------------------------------------------
def _usage(usage: Usage | None) -> dict[str, Any]:
    read, wrote = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return {
        "input_tokens": read,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": wrote,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": read + wrote,
    }


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content if status != "in_progress" else [],
    }


def _call_item(call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "id": f"fc_{call.id.removeprefix('call_')}",
        "type": "function_call",
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments if status != "in_progress" else "",
        "status": status,
    }


def _status(out: CollectedOutput | None) -> str:
    if out is None:
        return "in_progress"
    return "incomplete" if out.finish_reason == "length" else "completed"


def response_body(
    response_id: str,
    model_id: str,
    body: ResponseRequest,
    out: CollectedOutput | None,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The response object: in progress (``out`` None) or finished. ``output`` defaults to
    one message with the text (when there is text or no call), then the calls."""
    status = _status(out)
    if output is None and out is not None:
        output = (
            []
            if out.tool_calls and not out.text
            else [_message_item(f"msg_{response_id.removeprefix('resp_')}", out.text, "completed")]
        )
        output += [_call_item(c, "completed") for c in out.tool_calls]
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model_id,
        "output": output or [],
        "usage": _usage(out.usage) if out is not None else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.instructions,
        "tools": body.tools or [],
        "tool_choice": body.tool_choice or "auto",
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "max_output_tokens": body.max_output_tokens,
        "previous_response_id": body.previous_response_id,
        "text": {"format": (body.text.format if body.text else None) or {"type": "text"}},
        "metadata": body.metadata or {},
        "store": body.store is not False,
    }


def output_messages(out: CollectedOutput) -> tuple[Message, ...]:
    """The answer as a conversation turn (what ``previous_response_id`` continues from)."""
    calls = tuple(
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in out.tool_calls
    )
    return (Message("assistant", out.text, tool_calls=calls),)


class ResponseEvents(Encoder):
    """The Responses stream: each record is a batch, ``{"events": [typed events]}``."""

    def __init__(self, response_id: str, model_id: str, body: ResponseRequest, done: Done) -> None:
        super().__init__()
        self.response_id, self.model_id, self.body, self.done = response_id, model_id, body, done
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.message: int | None = None  # output index of the message item, once opened

    def _event(self, kind: str, **fields: Any) -> Record:
        record = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return record

    def _response(self, out: CollectedOutput | None) -> dict[str, Any]:
        return response_body(self.response_id, self.model_id, self.body, out, self.output)

    def opening(self) -> list[Record]:
        head = self._response(None)
        return [
            {
                "events": [
                    self._event("response.created", response=head),
                    self._event("response.in_progress", response=head),
                ]
            }
        ]

    def _open_message(self) -> list[Record]:
        self.message = len(self.output)
        item = _message_item(f"msg_{self.response_id.removeprefix('resp_')}", "", "in_progress")
        self.output.append(item)
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item["id"], "output_index": self.message}
        return [
            self._event("response.output_item.added", output_index=self.message, item=item),
            self._event("response.content_part.added", **where, content_index=0, part=part),
        ]

    def _where(self) -> dict[str, Any]:
        assert self.message is not None
        item_id = self.output[self.message]["id"]
        return {"item_id": item_id, "output_index": self.message, "content_index": 0}

    def text(self, event: TextDelta) -> Record:
        events = self._open_message() if self.message is None else []
        delta = self._event(
            "response.output_text.delta", **self._where(), delta=event.text, logprobs=[]
        )
        return {"events": [*events, delta]}

    def tool_call(self, event: ToolCall, index: int) -> Record:
        at = len(self.output)
        item = _call_item(event, "completed")
        self.output.append(item)
        where = {"item_id": item["id"], "output_index": at}
        return {
            "events": [
                self._event(
                    "response.output_item.added",
                    output_index=at,
                    item=_call_item(event, "in_progress"),
                ),
                self._event(
                    "response.function_call_arguments.delta", **where, delta=event.arguments
                ),
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=event.name,
                    arguments=event.arguments,
                ),
                self._event("response.output_item.done", output_index=at, item=item),
            ]
        }

    def _close_message(self, text: str) -> list[Record]:
        if self.message is None:
            return []
        item = _message_item(self.output[self.message]["id"], text, "completed")
        self.output[self.message] = item
        where = self._where()
        return [
            self._event("response.output_text.done", **where, text=text, logprobs=[]),
            self._event("response.content_part.done", **where, part=item["content"][0]),
            self._event("response.output_item.done", output_index=self.message, item=item),
        ]

    def closing(self, out: CollectedOutput) -> list[Record]:
        events: list[Record] = []
        if self.message is None and not out.tool_calls:  # no text at all: an empty message
            events += self._open_message()
        events += self._close_message(out.text)
        final = self._response(out)
        self.done(out, final)
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return [{"events": [*events, self._event(kind, response=final)]}]
