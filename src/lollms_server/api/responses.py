"""JSON for responses, safe for any text a request or a model produced: the one encoder
behind JSON answers, SSE events and NDJSON lines.

msgspec writes the bytes (a tenth of the stdlib encoder's CPU for a stream chunk; NaN and
infinities become null). JSON lets a client send a lone UTF-16 surrogate (``"\\ud83c"``);
Python keeps it in the string, and encoding the answer as UTF-8 then fails (a 500, or a
stream cut short). Such characters become U+FFFD, the replacement character, in what the
server sends back. The normal path costs nothing: the fallback runs only when the strict
encoding fails.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from fastapi.responses import JSONResponse as _StarletteJSON

__all__ = ["JSONResponse", "json_bytes", "utf8"]

_encode = msgspec.json.Encoder().encode
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (
            text.encode("utf-16", "surrogatepass")
            .decode("utf-16", "replace")
            .encode("utf-8", "replace")
        )


def json_bytes(content: Any) -> bytes:
    """``content`` as compact UTF-8 JSON."""
    try:
        return _encode(content)
    except UnicodeEncodeError:  # a lone surrogate: the slow path replaces it
        return utf8(_dumps(content))


class JSONResponse(_StarletteJSON):
    def render(self, content: Any) -> bytes:
        return json_bytes(content)
