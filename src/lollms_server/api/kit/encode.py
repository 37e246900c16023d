"""The one streaming driver: a run's events, folded once, shown by a dialect's encoder.

An :class:`Encoder` says how one dialect shows each kind of event as a stream record (or
shows nothing: the default); :func:`encode` folds every event (so the encoder's closing
record sees the whole answer) and yields the records. The per-token path is one dict lookup
and one method call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from lollms_server.bindings.events import (
    MediaOutput,
    Step,
    TextDelta,
    TextReplace,
    ThoughtsDelta,
    ToolCall,
    ToolResult,
)
from lollms_server.generation.fold import CollectedOutput, Fold
from lollms_server.generation.run import Run

__all__ = ["Encoder", "Record", "encode"]

Record = dict[str, Any]


class Encoder:
    """How a dialect streams a run. Override what the dialect shows; the rest is hidden."""

    def __init__(self) -> None:
        self.fold = Fold()  # the answer so far, kept by :func:`encode`

    def opening(self) -> list[Record]:
        """Records sent before any event (a role announcement, an echoed prompt)."""
        return []

    def text(self, event: TextDelta) -> Record | None:
        """A piece of the answer."""
        return None

    def replaced(self, event: TextReplace) -> Record | None:
        """The answer so far was rewritten (a script's set_content). A stream cannot take
        back what it sent: by default the new text follows, after a blank line."""
        return self.text(TextDelta(f"\n\n{event.text}"))

    def thoughts(self, event: ThoughtsDelta) -> Record | None:
        """A piece of the model's reasoning."""
        return None

    def tool_call(self, event: ToolCall, index: int) -> Record | None:
        """The model called a tool (``index`` counts the run's calls from 0)."""
        return None

    def tool_result(self, event: ToolResult) -> Record | None:
        """A server function answered a tool call."""
        return None

    def media(self, event: MediaOutput) -> Record | None:
        """A produced file."""
        return None

    def step(self, event: Step) -> Record | None:
        """Progress of a workflow or a media pipeline."""
        return None

    def closing(self, out: CollectedOutput) -> list[Record]:
        """Records sent after the last event, knowing the whole answer."""
        return []

    def handlers(self) -> dict[type, Callable[[Any], Record | None]]:
        """Event type -> the method that shows it."""
        return {
            TextDelta: self.text,
            ThoughtsDelta: self.thoughts,
            TextReplace: self.replaced,
            ToolCall: self._tool_call,
            ToolResult: self.tool_result,
            MediaOutput: self.media,
            Step: self.step,
        }

    def _tool_call(self, event: ToolCall) -> Record | None:
        return self.tool_call(event, len(self.fold.tool_calls) - 1)


async def encode(run: Run, encoder: Encoder) -> AsyncIterator[Record]:
    """Stream ``run`` as ``encoder``'s records: opening, one per shown event, closing."""
    for first in encoder.opening():
        yield first
    fold, handlers = encoder.fold, encoder.handlers()
    async for event in run:
        fold.add(event)
        handler = handlers.get(type(event))
        if handler is not None and (record := handler(event)) is not None:
            yield record
    for last in encoder.closing(fold.result()):
        yield last
