"""JSON for responses, safe for any text a request or a model produced.

JSON lets a client send a lone UTF-16 surrogate (``"\\ud83c"``); Python keeps it in the
string, and encoding the answer as UTF-8 then fails (a 500, or a stream cut short). Such
characters become U+FFFD, the replacement character, in what the server sends back. The
normal path costs nothing: the fallback runs only when the strict encoding fails.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse as _StarletteJSON

__all__ = ["JSONResponse", "utf8"]


def utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (
            text.encode("utf-16", "surrogatepass")
            .decode("utf-16", "replace")
            .encode("utf-8", "replace")
        )


class JSONResponse(_StarletteJSON):
    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            import json

            return utf8(
                json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            )
