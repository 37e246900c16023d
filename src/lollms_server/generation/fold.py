"""The one fold of a run's events into its answer.

Every front end shows a run either as a stream or as one answer; both go through
:class:`Fold`, so what an event means for the answer (a ``TextReplace`` replaces the text so
far, a ``Usage`` is the last count, a ``Finished`` gives the reason) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lollms_server.bindings.events import (
    Event,
    Finished,
    MediaOutput,
    Step,
    TextDelta,
    TextReplace,
    ThoughtsDelta,
    ToolCall,
    ToolResult,
    Usage,
)

__all__ = ["CollectedOutput", "Fold"]


@dataclass
class CollectedOutput:
    """A whole answer: what a client that did not ask for a stream receives."""

    text: str = ""
    thoughts: str = ""
    media: list[MediaOutput] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Fold:
    """Adds events one by one; :meth:`result` is the answer so far."""

    __slots__ = ("_out", "_text", "_thoughts")

    def __init__(self) -> None:
        self._out = CollectedOutput()
        self._text: list[str] = []
        self._thoughts: list[str] = []

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The tool calls so far (a stream numbers them by their position here)."""
        return self._out.tool_calls

    def add(self, event: Event) -> None:
        """Fold one event in (text first: it is nearly every event)."""
        kind = type(event)
        if kind is TextDelta:
            self._text.append(event.text)  # type: ignore[union-attr]
        elif kind is ThoughtsDelta:
            self._thoughts.append(event.text)  # type: ignore[union-attr]
        elif kind is TextReplace:
            self._text[:] = [event.text]  # type: ignore[union-attr]
        else:
            self._add_other(event)

    def _add_other(self, event: Event) -> None:
        out = self._out
        if isinstance(event, MediaOutput):
            out.media.append(event)
        elif isinstance(event, ToolCall):
            out.tool_calls.append(event)
        elif isinstance(event, ToolResult):
            out.tool_results.append(event)
        elif isinstance(event, Step):
            out.steps.append(event)
        elif isinstance(event, Usage):
            out.usage = event
        elif isinstance(event, Finished):
            out.finish_reason = event.finish_reason
            out.metadata.update(event.metadata)

    def result(self) -> CollectedOutput:
        """The answer so far (the same object each time, its text brought up to date)."""
        self._out.text, self._out.thoughts = "".join(self._text), "".join(self._thoughts)
        return self._out
