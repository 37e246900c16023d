"""Request bodies of the OpenAI-compatible ``/v1`` API (the subset lollms_server serves)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = ["ChatCompletionRequest", "ChatMessage", "CompletionRequest", "StreamOptions"]


class _Lenient(BaseModel):
    # OpenAI clients send many optional fields (user, metadata, store...): accept and ignore
    # the harmless ones; the ones that change the output are declared and checked.
    model_config = ConfigDict(extra="allow")


class ContentPart(_Lenient):
    type: str
    text: str | None = None
    image_url: dict[str, Any] | None = None


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    function_call: dict[str, Any] | None = None  # legacy: an assistant's one call


class StreamOptions(_Lenient):
    include_usage: StrictBool = False


class _Sampling(_Lenient):
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    # null means the default for these, as in OpenAI's API (its SDK may send null).
    n: int | None = Field(1, ge=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    personality: str | None = None
    # Output-changing extras: honoured (top_k, min_p, repeat_penalty as vLLM and llama.cpp's
    # server take them; logit_bias where the binding takes it) or refused with a 400.
    logprobs: StrictBool | int | None = None
    top_logprobs: int | None = Field(None, ge=0)
    logit_bias: dict[str, float] | None = None
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repeat_penalty: float | None = Field(None, gt=0)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None  # legacy tools
    function_call: str | dict[str, Any] | None = None  # legacy tool_choice


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    echo: StrictBool | None = False
    suffix: str | None = None
