"""Prompts that fit the model's context, as lollms makes them.

A zoo processor builds its prompts as text, often with the whole discussion and its documents
in them; lollms cut them to the model's context (``ctx_size``) before generating. Here the
prompt, split into messages, is cut the same way: the oldest turns of the conversation go
first, then the largest remaining parts (documents, long texts) lose their middle, keeping
their head (an instruction, the conditioning) and their end (the latest text), with room
left for the answer.

Token counts come from the model's tokenizer through the port; a binding without one is
counted one token per word (an approximation: such bindings are remote servers whose context
is rarely known anyway).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lollms_server.bindings.types import Message

if TYPE_CHECKING:
    from lollms_server.generation.port import GenerationPort

__all__ = ["OVERHEAD", "Tokens", "answer_room", "count_messages", "fit_messages"]

OVERHEAD = 8  # tokens a chat template (or a lollms header) adds around each message
CUT_MARK = "\n[...]\n"
_MARK_TOKENS = 4  # what the mark takes, at most
_WORD = re.compile(r"\S+\s*|\s+")
_MAX_ROUNDS = 8


class Tokens:
    """The tokenizer of one model through the port, with the one-token-per-word
    approximation for bindings that have none."""

    def __init__(self, port: GenerationPort, binding: str | None, model: str | None) -> None:
        self.port = port
        self.binding = binding
        self.model = model
        self.approximate = False
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []

    def _word_ids(self, text: str) -> list[int]:
        ids = []
        for word in _WORD.findall(text):
            if word not in self._vocab:
                self._vocab[word] = len(self._words)
                self._words.append(word)
            ids.append(self._vocab[word])
        return ids

    async def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        if not self.approximate:
            ids = await self.port.tokenize(self.binding, self.model, text)
            if ids is not None:
                return ids
            self.approximate = True
        return self._word_ids(text)

    async def decode(self, ids: Sequence[int]) -> str:
        """The text of ids from :meth:`encode`."""
        if not self.approximate:
            text = await self.port.detokenize(self.binding, self.model, list(ids))
            if text is not None:
                return text
        return "".join(self._words[i] for i in ids if 0 <= i < len(self._words))

    async def count(self, text: str) -> int:
        """How many tokens ``text`` takes."""
        return len(await self.encode(text)) if text else 0


def answer_room(context: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer: the requested length (at most half the context), or
    a quarter of the context (at most 512) when none is asked."""
    if max_tokens is not None and max_tokens > 0:
        return min(max_tokens, context // 2)
    return min(context // 4, 512)


def _most(messages: Sequence[Message]) -> int:
    """The most tokens ``messages`` can take: a token is at least one byte."""
    return sum(len(m.content.encode()) + OVERHEAD for m in messages)


async def count_messages(messages: Sequence[Message], tokens: Tokens) -> int:
    """How many tokens ``messages`` take (their texts and the template around each)."""
    return sum([await tokens.count(m.content) + OVERHEAD for m in messages])


async def _cut(text: str, allowed: int, tokens: Tokens) -> str:
    """``text`` in at most about ``allowed`` tokens: its first quarter and its end."""
    if allowed <= 0:
        return ""
    ids = await tokens.encode(text)
    if len(ids) <= allowed:
        return text
    head = allowed // 4
    tail = allowed - head
    return (await tokens.decode(ids[:head])) + CUT_MARK + (await tokens.decode(ids[-tail:]))


async def fit_messages(
    messages: Sequence[Message], budget: int, tokens: Tokens
) -> tuple[tuple[Message, ...], int]:
    """``messages`` cut to at most ``budget`` tokens, and how many tokens they take (at
    most: short prompts are not counted exactly).

    The oldest turns after the system message go first (the last message stays), then the
    largest messages lose their middle until the whole fits.
    """
    items = list(messages)
    most = _most(items)
    if most <= budget:  # no need to count
        return tuple(items), most
    counts = [await tokens.count(m.content) + OVERHEAD for m in items]
    first = 1 if items and items[0].role == "system" else 0
    while sum(counts) > budget and len(items) - first > 1:
        del items[first], counts[first]
    for _ in range(_MAX_ROUNDS):
        excess = sum(counts) - budget
        if excess <= 0:
            break
        index = max(range(len(items)), key=counts.__getitem__)
        content = items[index].content
        allowed = counts[index] - OVERHEAD - excess - _MARK_TOKENS
        items[index] = dataclasses.replace(
            items[index], content=await _cut(content, allowed, tokens)
        )
        counts[index] = await tokens.count(items[index].content) + OVERHEAD
    return tuple(items), sum(counts)
