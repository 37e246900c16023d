"""Events: the one internal shape of generation output.

A binding's ``generate()`` yields these; the generation service post-processes them (think-tag
splitting, timings) and each wire encoder in ``api/`` turns them into its own format. Media
travel as raw bytes plus a mime type; only the wire encoder base64-encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event",
    "Finished",
    "MediaOutput",
    "Step",
    "TextDelta",
    "TextReplace",
    "ThoughtsDelta",
    "ToolCall",
    "ToolResult",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True, slots=True)
class ThoughtsDelta:
    """A piece of the model's reasoning, kept apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class MediaOutput:
    """One produced file (image, audio, video) as bytes."""

    data: bytes
    mime_type: str
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model calls tool ``name`` with JSON ``arguments``; ``id`` pairs it with a result."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What the server's function call for ``ToolCall`` ``id`` returned (or its error)."""

    id: str
    name: str
    content: str
    ok: bool = True


@dataclass(frozen=True, slots=True)
class TextReplace:
    """The whole answer so far is replaced by ``text`` (a script rewrote its message)."""

    text: str


@dataclass(frozen=True, slots=True)
class Step:
    """Progress of a workflow: ``kind`` is step_start, step_end, step, info, warning or
    exception; ``ok`` tells how a step ended."""

    kind: str
    text: str
    ok: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens read and written by the generation (the last one counts)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt and completion together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Finished:
    """Last event of a generation: why it stopped (``stop``, ``length``, ``cancelled``...)."""

    finish_reason: str
    metadata: dict[str, Any] = field(default_factory=dict)


Event = (
    TextDelta
    | ThoughtsDelta
    | MediaOutput
    | ToolCall
    | ToolResult
    | TextReplace
    | Step
    | Usage
    | Finished
)
