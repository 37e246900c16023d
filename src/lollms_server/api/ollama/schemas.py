"""Request bodies of the Ollama-compatible ``/api`` routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool

__all__ = [
    "ChatRequest",
    "EmbedRequest",
    "GenerateRequest",
    "LegacyEmbedRequest",
    "ModelRequest",
    "OllamaMessage",
]


class _Lenient(BaseModel):
    # Unknown fields are accepted. Booleans below are StrictBool: JSON true or false, never 0
    # or "yes" (Ollama's own JSON decoding refuses those too).
    model_config = ConfigDict(extra="allow")


class ModelRequest(_Lenient):
    # "name" is the older spelling, still sent by clients (lollms_client's /api/show).
    model: str = Field(validation_alias=AliasChoices("model", "name"))


class EmbedRequest(ModelRequest):
    input: str | Annotated[list[str], Field(max_length=2048)]
    truncate: StrictBool = True


class LegacyEmbedRequest(ModelRequest):
    prompt: str


class OllamaMessage(_Lenient):
    role: str
    content: str = ""
    images: list[str] | None = None
    thinking: str | None = None
    # Tool round trips: an assistant turn's calls ({"function": {"name", "arguments": {}}}),
    # and a tool turn naming the function it answers.
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Common(_Lenient):
    model: str
    stream: StrictBool = True
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    format: str | dict[str, Any] | None = None
    think: StrictBool | str | None = None


class GenerateRequest(_Common):
    prompt: str = ""
    system: str | None = None
    images: list[str] | None = None
    raw: StrictBool = False
    suffix: str | None = None


class ChatRequest(_Common):
    messages: list[OllamaMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
