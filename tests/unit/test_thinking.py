from __future__ import annotations

import pytest

from lollms_server.bindings.events import TextDelta, ThoughtsDelta
from lollms_server.generation.thinking import ThinkSplitter


def _run(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    events = [e for c in chunks for e in splitter.feed(c)] + splitter.flush()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thoughts = "".join(e.text for e in events if isinstance(e, ThoughtsDelta))
    return text, thoughts


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_split_at_any_chunk_boundary(size: int) -> None:
    source = "<think>let me see</think>The answer is 4."
    chunks = [source[i : i + size] for i in range(0, len(source), size)]
    assert _run(chunks) == ("The answer is 4.", "let me see")


def test_plain_text_with_angle_brackets_passes_through() -> None:
    assert _run(["a < b", " and <b>bold</b> <thin"]) == ("a < b and <b>bold</b> <thin", "")


def test_unterminated_think_keeps_thoughts() -> None:
    assert _run(["<think>still thinking"]) == ("", "still thinking")


def test_plain_chunk_is_passed_without_copy() -> None:
    splitter = ThinkSplitter()
    out = splitter.feed("hello")
    assert out == [TextDelta("hello")]
