"""Server-Sent Events: the one encoder for streamed responses.

Routes hand over an async iterator of JSON-able dicts. An exception raised after the stream
started becomes one ``error`` event (same body as the JSON error envelope, plus
``"type": "error"``) and the stream ends; a client that disconnects cancels the iterator,
which closes the generation under it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse

from lollms_server.api.errors import error_payload

__all__ = ["sse_response"]

PING_SECONDS = 15


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


async def _encode(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    try:
        async for payload in source:
            yield _dumps(payload)
    except Exception as exc:
        _, body = error_payload(exc)
        yield _dumps({"type": "error", **body})
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def sse_response(source: AsyncIterator[dict[str, Any]]) -> EventSourceResponse:
    return EventSourceResponse(
        _encode(source),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
