"""What the edge checks in every request body, as a pure ASGI middleware (no buffering, no
streaming penalty): its size, and lone UTF-16 surrogates in its text (api/surrogates.py)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lollms_server.api.errors import envelope
from lollms_server.api.surrogates import SurrogateScanner

__all__ = ["BodyLimitMiddleware"]


def _content_type(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bytes(value).lower()
    return b""


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes`` (413) and JSON text with a lone surrogate (400)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.message = f"Request body exceeds {max_bytes} bytes ([server] max_request_bytes)."

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        received = 0
        # Every body but an upload is scanned: the Ollama routes read any body as JSON.
        scanner = None if _content_type(scope).startswith(b"multipart/") else SurrogateScanner()

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                received += len(chunk)
                if received > self.max_bytes:
                    # An HTTPException passes FastAPI's body parsing untouched and becomes the
                    # 413 envelope in api/errors.py. `send` is deliberately not wrapped: the
                    # streaming hot path should not pay for a check that only reading needs.
                    raise HTTPException(413, self.message)
                if scanner is not None:
                    scanner.feed(chunk)
                    if not message.get("more_body", False):
                        scanner.finish()  # raises LoneSurrogate, an HTTPException as well
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(envelope("request_too_large", self.message)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
