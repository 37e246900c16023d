"""Separate ``<think>...</think>`` reasoning from the answer, across chunk boundaries."""

from __future__ import annotations

from lollms_server.bindings.events import Event, TextDelta, ThoughtsDelta

__all__ = ["ThinkSplitter"]

OPEN, CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Feed text chunks in order; get back TextDelta / ThoughtsDelta events.

    A tag split over two chunks is held back until it can be decided, so no partial tag ever
    reaches the client. Chunks holding no ``<`` outside a think block pass straight through.
    """

    __slots__ = ("_held", "_inside")

    def __init__(self) -> None:
        self._inside = False
        self._held = ""

    def feed(self, text: str) -> list[Event]:
        if not self._held and not self._inside and "<" not in text:
            return [TextDelta(text)]  # the hot path: plain answer text
        buffer = self._held + text
        self._held = ""
        out: list[Event] = []
        while buffer:
            tag = CLOSE if self._inside else OPEN
            index = buffer.find(tag)
            if index >= 0:
                self._emit(out, buffer[:index])
                buffer = buffer[index + len(tag) :]
                self._inside = not self._inside
                continue
            keep = _partial_suffix(buffer, tag)
            self._emit(out, buffer[: len(buffer) - keep])
            self._held = buffer[len(buffer) - keep :]
            break
        return out

    def flush(self) -> list[Event]:
        """End of stream: whatever was held back is plain content."""
        out: list[Event] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[Event], text: str) -> None:
        if text:
            out.append(ThoughtsDelta(text) if self._inside else TextDelta(text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
