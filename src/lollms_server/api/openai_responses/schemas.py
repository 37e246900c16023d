"""Request body of ``POST /v1/responses`` (the part lollms_server serves)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

__all__ = ["ResponseRequest", "TextConfig"]


class _Lenient(BaseModel):
    # Harmless fields (user, metadata, include, store...) are accepted; the ones that change
    # the output are declared, and refused where they cannot be honoured.
    model_config = ConfigDict(extra="allow")


class TextConfig(_Lenient):
    format: dict[str, Any] | None = None


class ResponseRequest(_Lenient):
    model: str
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    previous_response_id: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    stream: StrictBool | None = False
    store: StrictBool | None = True
    text: TextConfig | None = None
    metadata: dict[str, str] | None = None
    personality: str | None = None
    background: StrictBool | None = None
    top_logprobs: int | None = None
    truncation: Literal["auto", "disabled"] | None = None
