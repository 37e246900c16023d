"""The OpenAPI page and schema, behind the API key like every route but ``/health``.

A browser cannot add a header to a page it opens, so these two routes also take the key as
the password of HTTP Basic authentication (any user name): without a key they answer 401 with
``WWW-Authenticate: Basic``, the browser asks for the password, and it sends the same
credentials again when the page fetches ``/openapi.json``. The page's "Authorize" button then
takes the key for the API calls it makes (Bearer or X-API-Key, as everywhere else).
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from lollms_server.api.auth import authenticate, header_key
from lollms_server.api.openapi import install_openapi
from lollms_server.api.responses import JSONResponse
from lollms_server.errors import Unauthorized

__all__ = ["docs_router"]


def _basic_password(request: Request) -> str | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2] or None


async def _docs_key(request: Request) -> None:
    try:
        authenticate(request, header_key(request) or _basic_password(request))
    except Unauthorized as exc:
        raise _BrowserUnauthorized(exc.message) from None


class _BrowserUnauthorized(Unauthorized):
    """401 asking a browser for the key (as the Basic password) instead of a bearer token."""

    challenge = 'Basic realm="lollms_server: the API key as password", charset="UTF-8"'


def docs_router(app: FastAPI) -> APIRouter:
    """``/openapi.json`` and ``/docs``; the document is the true one of api/openapi.py
    (installed as ``app.openapi`` here, where the app starts serving it)."""
    install_openapi(app)
    router = APIRouter(dependencies=[Depends(_docs_key)], include_in_schema=False)

    @router.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="lollms_server API")

    return router
