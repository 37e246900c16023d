"""What a front end asks of the generation service: one request type for every dialect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lollms_server.bindings.types import MediaOptions, Message, SamplingParams

__all__ = ["GenerationRequest"]


@dataclass(frozen=True)
class GenerationRequest:
    """A generation as a front end asks for it: target, conversation, sampling, personality,
    tools and limits (everything optional but the conversation or prompt)."""

    generation_type: str = "ttt"
    binding_name: str | None = None
    model_name: str | None = None
    messages: tuple[Message, ...] = ()
    raw_prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    personality: str | None = None
    queue_timeout: float | None = None
    keep_alive: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: Any = None
    language: str | None = None  # a personality's translation
    user_name: str | None = None  # fills {{user_name}} in a personality's conditioning
    functions: tuple[str, ...] = ()  # server functions the model may call
    max_tool_rounds: int | None = None
    personality_config: Mapping[str, Any] = field(default_factory=dict)  # script settings
    media: MediaOptions = field(default_factory=lambda: MediaOptions())  # tti/ttv/ttm/tts
    json_schema: Mapping[str, Any] | None = None  # structured output
