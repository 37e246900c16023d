"""Responses kept for ``previous_response_id``: in memory, bounded, per API key.

Each key sees only its own responses; the oldest go first once a key holds ``MAX_PER_KEY``,
and any older than ``MAX_AGE_S``. A restart forgets them all.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from lollms_server.bindings.types import Message
from lollms_server.errors import NotFound

__all__ = ["MAX_AGE_S", "MAX_PER_KEY", "ResponseStore", "Stored"]

MAX_PER_KEY = 1000
MAX_AGE_S = 24 * 3600.0


@dataclass(frozen=True)
class Stored:
    """One response: the conversation it closes (input and output) and its wire object."""

    messages: tuple[Message, ...]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class ResponseStore:
    """Recent responses by API key name, then by response id."""

    def __init__(self, max_per_key: int = MAX_PER_KEY, max_age_s: float = MAX_AGE_S) -> None:
        self.max_per_key = max_per_key
        self.max_age_s = max_age_s
        self._by_key: dict[str, OrderedDict[str, Stored]] = {}

    def put(self, key: str, response_id: str, stored: Stored) -> None:
        """Keep ``stored`` for ``key``, dropping the oldest beyond the bounds."""
        kept = self._by_key.setdefault(key, OrderedDict())
        kept[response_id] = stored
        self._expire(kept)
        while len(kept) > self.max_per_key:
            kept.popitem(last=False)

    def get(self, key: str, response_id: str, param: str = "previous_response_id") -> Stored:
        """The stored response, or a 404 naming the id (another key's ids are unknown)."""
        kept = self._by_key.get(key)
        if kept is not None:
            self._expire(kept)
        found = kept.get(response_id) if kept is not None else None
        if found is None:
            raise NotFound(
                f"No stored response '{response_id}' for this API key. Responses are kept in "
                f"memory (the last {self.max_per_key} per key, for "
                f"{self.max_age_s / 3600:g} h, lost at restart; none with store=false).",
                param=param,
            )
        return found

    def delete(self, key: str, response_id: str) -> None:
        """Forget a response (404 if unknown)."""
        self.get(key, response_id, param="response_id")
        self._by_key[key].pop(response_id, None)

    def _expire(self, kept: OrderedDict[str, Stored]) -> None:
        limit = time.monotonic() - self.max_age_s
        while kept and next(iter(kept.values())).at < limit:
            kept.popitem(last=False)
