"""OpenAI ``/v1`` <-> GenerationService translation."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from lollms_server.api.kit.encode import Encoder, Record, encode
from lollms_server.api.kit.media import decode_media
from lollms_server.api.openai.schemas import (
    ChatCompletionRequest,
    ChatMessage,
    CompletionRequest,
    _Sampling,
)
from lollms_server.bindings.base import Binding
from lollms_server.bindings.events import (
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.types import MediaPart, Message, SamplingParams
from lollms_server.errors import BadRequest
from lollms_server.generation.fold import CollectedOutput
from lollms_server.generation.requests import GenerationRequest
from lollms_server.generation.run import Run

__all__ = [
    "MAX_CHOICES",
    "ChatChunks",
    "CompletionChunks",
    "chat_chunks",
    "chat_request",
    "choice_requests",
    "chat_response",
    "completion_chunks",
    "completion_request",
    "completion_response",
    "usage_chunk",
    "uses_legacy_functions",
]

MAX_CHOICES = 8
"""The most choices (``n``) one request may ask for: each is a whole generation."""


def _sampling(
    body: _Sampling, max_tokens: int | None, binding: Binding
) -> tuple[SamplingParams, dict[str, Any]]:
    if (body.n or 1) > MAX_CHOICES:
        raise BadRequest(
            f"n is at most {MAX_CHOICES} here (each choice is a whole generation).", param="n"
        )
    _refuse_logprobs(body)
    extra: dict[str, Any] = {}
    if body.frequency_penalty is not None:
        extra["frequency_penalty"] = body.frequency_penalty
    if body.presence_penalty is not None:
        extra["presence_penalty"] = body.presence_penalty
    extra.update(_engine_extras(body, binding))
    params = SamplingParams.from_wire(
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        repeat_penalty=body.repeat_penalty,
        max_tokens=max_tokens,
        seed=body.seed,
        stop=body.stop,
    )
    return params, extra


def _refuse_logprobs(body: _Sampling) -> None:
    """Token probabilities: no binding returns them yet, so asking is a 400, not a null."""
    for name in ("logprobs", "top_logprobs"):
        value = getattr(body, name)
        if value is not None and value is not False and value != 0:
            raise BadRequest(
                f"'{name}' is not supported: no binding of this server returns token "
                "probabilities yet.",
                param=name,
            )


def _engine_extras(body: _Sampling, binding: Binding) -> dict[str, Any]:
    """``logit_bias`` and ``min_p`` for a binding that takes them; a 400 naming them else."""
    extra: dict[str, Any] = {}
    for name in ("logit_bias", "min_p"):
        value = getattr(body, name)
        if value is None or value == {}:
            continue
        accepted = binding.extra_parameters
        if accepted is not None and name not in accepted:
            raise BadRequest(
                f"'{name}' is not supported by binding instance '{binding.instance_name}' "
                f"({binding.name}).",
                param=name,
            )
        extra[name] = value
    return extra


def _image(url: str, index: int) -> MediaPart:
    return decode_media(url, "image", f"messages.{index}.content", data_url_only=True)


def _legacy_message(message: ChatMessage) -> Message:
    """A legacy ``function`` result or an assistant ``function_call``, as tool turns (the
    call's id is made from the function's name: legacy calls have none)."""
    if message.role == "function":
        content = message.content if isinstance(message.content, str) else ""
        return Message("tool", content, tool_call_id=f"call_{message.name or ''}")
    call = message.function_call or {}
    text = message.content if isinstance(message.content, str) else ""
    return Message(
        "assistant",
        text,
        tool_calls=({"id": f"call_{call.get('name', '')}", "type": "function", "function": call},),
    )


def _message(message: ChatMessage, index: int) -> Message:
    if message.role == "function" or message.function_call is not None:
        return _legacy_message(message)
    role = "system" if message.role == "developer" else message.role
    calls = tuple(message.tool_calls or ())
    if message.content is None or isinstance(message.content, str):
        return Message(role, message.content or "", (), calls, message.tool_call_id)
    texts: list[str] = []
    media: list[MediaPart] = []
    for part in message.content:
        if part.type == "text":
            texts.append(part.text or "")
        elif part.type == "image_url" and part.image_url:
            media.append(_image(str(part.image_url.get("url", "")), index))
        else:
            raise BadRequest(
                f"Unsupported content part type '{part.type}'.", param=f"messages.{index}.content"
            )
    return Message(role, "\n".join(texts), tuple(media), calls, message.tool_call_id)


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The schema ``response_format`` asks the answer to follow (None: free text)."""
    fmt = (response_format or {}).get("type", "text")
    if fmt == "text":
        return None
    if fmt == "json_object":
        return {"type": "object"}
    if fmt != "json_schema":
        raise BadRequest(f"Unknown response_format type '{fmt}'.", param="response_format")
    schema = (response_format or {}).get("json_schema", {}).get("schema")
    if not isinstance(schema, dict):
        raise BadRequest(
            "response_format.json_schema.schema must be an object.", param="response_format"
        )
    return schema


def _tools(body: ChatCompletionRequest) -> tuple[tuple[dict[str, Any], ...], Any]:
    """``tools`` and ``tool_choice``, or the legacy ``functions`` and ``function_call``."""
    if body.functions is None and body.function_call is None:
        return tuple(body.tools or ()), body.tool_choice
    if body.tools is not None or body.tool_choice is not None:
        raise BadRequest("Give 'tools' or the legacy 'functions', not both.", param="functions")
    tools = tuple({"type": "function", "function": f} for f in body.functions or ())
    call = body.function_call
    if isinstance(call, dict):
        return tools, {"type": "function", "function": {"name": call.get("name")}}
    if call not in (None, "none", "auto"):
        raise BadRequest("function_call must be none, auto or {name}.", param="function_call")
    return tools, call


def uses_legacy_functions(body: ChatCompletionRequest) -> bool:
    """Whether the answer's calls go back as a legacy ``function_call``."""
    return body.functions is not None


def chat_request(body: ChatCompletionRequest, binding: Binding, model: str) -> GenerationRequest:
    params, extra = _sampling(body, body.max_completion_tokens or body.max_tokens, binding)
    schema = _schema(body.response_format)
    tools, tool_choice = _tools(body)
    return GenerationRequest(
        binding_name=binding.instance_name,
        model_name=model,
        messages=tuple(_message(m, i) for i, m in enumerate(body.messages)),
        params=params,
        personality=body.personality,
        extra=extra,
        tools=tools,
        tool_choice=tool_choice,
        json_schema=schema,
    )


def completion_request(body: CompletionRequest, binding: Binding, model: str) -> GenerationRequest:
    if isinstance(body.prompt, list):
        if len(body.prompt) != 1:
            raise BadRequest("Only one prompt per request is supported.", param="prompt")
        prompt = body.prompt[0]
    else:
        prompt = body.prompt
    if body.suffix:
        raise BadRequest("'suffix' (fill-in-the-middle) is not supported.", param="suffix")
    params, extra = _sampling(body, body.max_tokens or 16, binding)  # OpenAI's default: 16
    return GenerationRequest(
        binding_name=binding.instance_name,
        model_name=model,
        raw_prompt=prompt,
        params=params,
        personality=body.personality,
        extra=extra,
    )


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _finish(reason: str | None) -> str:
    return reason if reason in ("stop", "length", "tool_calls", "content_filter") else "stop"


def _head(run: Run, model_id: str, kind: str) -> dict[str, Any]:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return {
        "id": f"{prefix}-{run.request_id[4:]}",
        "object": kind,
        "created": int(time.time()),
        "model": model_id,
    }


def _tool_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if index is not None:
        out["index"] = index
    return out


def choice_requests(wanted: GenerationRequest, n: int | None) -> list[GenerationRequest]:
    """One request per choice; with a seed, choice ``i`` samples with ``seed + i`` (the same
    seed would make every choice the same answer)."""
    seed = wanted.params.seed
    if seed is None:
        return [wanted] * (n or 1)
    return [replace(wanted, params=replace(wanted.params, seed=seed + i)) for i in range(n or 1)]


def usage_chunk(run: Run, model_id: str, kind: str, outs: list[CollectedOutput]) -> Record:
    """The closing chunk of a stream of several choices: their summed usage."""
    return {**_head(run, model_id, kind), "choices": [], "usage": _summed(outs)}


def _summed(outs: list[CollectedOutput]) -> dict[str, int]:
    """The usage of every choice: the prompt counted once (as OpenAI does), the completion
    tokens of all."""
    usages = [_usage(out.usage) for out in outs]
    prompt = usages[0]["prompt_tokens"] if usages else 0
    completion = sum(u["completion_tokens"] for u in usages)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def chat_response(
    run: Run, model_id: str, outs: list[CollectedOutput], legacy: bool = False
) -> dict[str, Any]:
    """The whole chat completion, one choice per output (``legacy``: the first call as a
    ``function_call``)."""
    return {
        **_head(run, model_id, "chat.completion"),
        "choices": [_chat_choice(out, i, legacy) for i, out in enumerate(outs)],
        "usage": _summed(outs),
    }


def _chat_choice(out: CollectedOutput, index: int, legacy: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": out.text}
    if out.thoughts:
        message["reasoning_content"] = out.thoughts
    finish = _finish(out.finish_reason)
    if out.tool_calls and legacy:
        call = out.tool_calls[0]
        message["function_call"] = {"name": call.name, "arguments": call.arguments}
        message["content"] = out.text or None
        finish = "function_call"
    elif out.tool_calls:
        message["tool_calls"] = [_tool_call(c) for c in out.tool_calls]
        message["content"] = out.text or None
        finish = "tool_calls"
    return {"index": index, "message": message, "finish_reason": finish, "logprobs": None}


def completion_response(
    run: Run, model_id: str, outs: list[CollectedOutput], echo: str | None
) -> dict[str, Any]:
    """The whole text completion, one choice per output."""
    return {
        **_head(run, model_id, "text_completion"),
        "choices": [
            {
                "index": index,
                "text": (echo or "") + out.text,
                "logprobs": None,
                "finish_reason": _finish(out.finish_reason),
            }
            for index, out in enumerate(outs)
        ],
        "usage": _summed(outs),
    }


class _Chunks(Encoder):
    """OpenAI's streamed chunks (chat or text completion), then the usage chunk if asked."""

    kind = ""

    def __init__(self, run: Run, model_id: str, include_usage: bool, index: int = 0) -> None:
        super().__init__()
        self.head = _head(run, model_id, self.kind)
        self.include_usage = include_usage
        self.index = index  # the choice these chunks stream

    def _usage_chunk(self, out: CollectedOutput) -> list[Record]:
        return (
            [{**self.head, "choices": [], "usage": _usage(out.usage)}] if self.include_usage else []
        )


class ChatChunks(_Chunks):
    """``chat.completion.chunk`` records: content, reasoning_content and tool_calls deltas."""

    kind = "chat.completion.chunk"

    def __init__(
        self, run: Run, model_id: str, include_usage: bool, legacy: bool, index: int = 0
    ) -> None:
        super().__init__(run, model_id, include_usage, index)
        self.legacy = legacy  # calls as a legacy function_call

    def chunk(self, delta: Record, finish: str | None = None) -> Record:
        choice = {"index": self.index, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**self.head, "choices": [choice]}

    def opening(self) -> list[Record]:
        return [self.chunk({"role": "assistant", "content": ""})]

    def text(self, event: TextDelta) -> Record:
        return self.chunk({"content": event.text})

    def thoughts(self, event: ThoughtsDelta) -> Record:
        return self.chunk({"reasoning_content": event.text})

    def tool_call(self, event: ToolCall, index: int) -> Record | None:
        if self.legacy:  # one call only, as legacy clients expect
            call = {"name": event.name, "arguments": event.arguments}
            return self.chunk({"function_call": call}) if index == 0 else None
        return self.chunk({"tool_calls": [_tool_call(event, index)]})

    def closing(self, out: CollectedOutput) -> list[Record]:
        calls = "function_call" if self.legacy else "tool_calls"
        finish = calls if out.tool_calls else _finish(out.finish_reason)
        return [self.chunk({}, finish), *self._usage_chunk(out)]


class CompletionChunks(_Chunks):
    """``text_completion`` records (the echoed prompt first when asked)."""

    kind = "text_completion"

    def __init__(
        self, run: Run, model_id: str, include_usage: bool, echo: str | None, index: int = 0
    ) -> None:
        super().__init__(run, model_id, include_usage, index)
        self.echo = echo

    def chunk(self, text: str, finish: str | None = None) -> Record:
        choice = {"index": self.index, "text": text, "logprobs": None, "finish_reason": finish}
        return {**self.head, "choices": [choice]}

    def opening(self) -> list[Record]:
        return [self.chunk(self.echo)] if self.echo else []

    def text(self, event: TextDelta) -> Record:
        return self.chunk(event.text)

    def closing(self, out: CollectedOutput) -> list[Record]:
        return [self.chunk("", _finish(out.finish_reason)), *self._usage_chunk(out)]


def chat_chunks(
    run: Run, model_id: str, include_usage: bool, legacy: bool = False
) -> AsyncIterator[Record]:
    """The chat completion stream of ``run``."""
    return encode(run, ChatChunks(run, model_id, include_usage, legacy))


def completion_chunks(
    run: Run, model_id: str, include_usage: bool, echo: str | None
) -> AsyncIterator[Record]:
    """The text completion stream of ``run``."""
    return encode(run, CompletionChunks(run, model_id, include_usage, echo))
