"""Lone UTF-16 surrogates in JSON request bodies: found at the edge, refused with a 400.

JSON lets a client write ``"\\ud800"``, half of a surrogate pair, alone; Python's decoder keeps
it in the string, and the first thing that encodes the text as UTF-8 (a tokenizer, an engine's
JSON, a log line) fails: a 500, or an engine's parser error relayed as a 502. Every route
gets the same rule instead: a 400 naming the field (``param``: its path in the body, such as
``messages.0.content``).

:class:`SurrogateScanner` looks at the body as it arrives (api/limits.py feeds it every
chunk): a cheap byte search for anything that can decode to a surrogate (an escape
``\\uD800``-``\\uDFFF``, or raw bytes ``ED A0``-``ED BF``, which Python's JSON decoder also
accepts). Only a body where that search hits, which includes a well-formed escaped pair such
as an emoji written ``\\ud83d\\ude00``, is decoded once more to find a surrogate left alone.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException

__all__ = ["LoneSurrogate", "SurrogateScanner", "lone_surrogate_path"]

# Anything that may decode to U+D800-U+DFFF: an escape, or the raw (CESU-8) bytes.
_SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_OVERLAP = 3  # a suspect pattern is at most 4 bytes long: one may straddle two chunks
_SURROGATE = re.compile("[\ud800-\udfff]")


class LoneSurrogate(HTTPException):
    """A JSON body whose text holds a lone surrogate.

    Raised while the body is read, so it passes FastAPI's body parsing untouched (as the 413
    of api/limits.py does); api/errors.py checks the key, then answers 400 naming ``param``.
    """

    def __init__(self, param: str, body_key: str | None = None) -> None:
        super().__init__(
            400,
            f"'{param}' holds a lone UTF-16 surrogate (U+D800-U+DFFF, half of a pair), which "
            "is not Unicode text: send the whole character, or drop it.",
        )
        self.param = param
        # lollms-webui clients send the API key as the body's client_id (see webui/routes.py).
        self.body_key = body_key


def lone_surrogate_path(data: Any, path: str = "") -> str | None:
    """The dotted path of the first string (a key or a value) in ``data`` that holds a
    surrogate code point; ``None`` when there is none. A bad top-level value is ``body``."""
    if isinstance(data, str):
        return (path or "body") if _SURROGATE.search(data) else None
    if isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            if _SURROGATE.search(key):
                return _printable(child)
            found = lone_surrogate_path(value, child)
            if found is not None:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = lone_surrogate_path(value, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


def _printable(path: str) -> str:
    """A path whose own text holds the surrogate (a bad key), made printable."""
    return _SURROGATE.sub("\ufffd", path)


class SurrogateScanner:
    """Watches one request body, chunk by chunk; :meth:`finish` raises :class:`LoneSurrogate`.

    Chunks are kept by reference only (the server reads the whole body anyway), and decoded
    again only when the byte search hit.
    """

    __slots__ = ("_chunks", "_suspect", "_tail")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._suspect = False
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the body."""
        if not chunk:
            return
        self._chunks.append(chunk)
        if not self._suspect:
            self._suspect = bool(
                _SUSPECT.search(chunk) or _SUSPECT.search(self._tail + chunk[:_OVERLAP])
            )
            self._tail = chunk[-_OVERLAP:]

    def finish(self) -> None:
        """The body is complete: raise :class:`LoneSurrogate` if its text holds one."""
        chunks, self._chunks = self._chunks, []
        if not self._suspect:
            return
        try:
            data = json.loads(b"".join(chunks))
        except ValueError:
            return  # not JSON: whoever reads it reports that (or reads it as something else)
        path = lone_surrogate_path(data)
        if path is not None:
            key = data.get("client_id") if isinstance(data, dict) else None
            raise LoneSurrogate(path, key if isinstance(key, str) else None)
