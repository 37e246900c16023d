"""The web page: ``/`` and its assets under ``/ui/``, static files shipped in the package.

They need no key: the page holds no data, and every call it makes goes to the keyed API with
the key its user types (kept in the tab's session storage, sent as ``Authorization: Bearer``).
Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
only: no inline code, no eval, no other host), ``nosniff``, no Referer and no framing.
Starlette's ``StaticFiles`` does the lookup: it keeps every path inside the folder (``..``
and symbolic links leading out answer 404) and answers conditional requests with 304.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from lollms_server.errors import NotFound

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "WEB_ROOT", "router"]

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob: data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidated each time (ETag, 304): an upgraded server never runs a stale script.
    "Cache-Control": "no-cache",
}

# Only these kinds are served, each with its type stated (never guessed from the system).
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


class _Assets(StaticFiles):
    """StaticFiles whose answers carry the page's security headers and stated types."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Content-Type"] = _CONTENT_TYPES[PurePosixPath(str(full_path)).suffix]
        return response


_assets = _Assets(directory=WEB_ROOT, check_dir=False)

router = APIRouter(include_in_schema=False, tags=["web"])


async def _serve(path: str, request: Request) -> Response:
    if PurePosixPath(path).suffix not in _CONTENT_TYPES:
        raise NotFound(f"No file '/ui/{path}'.", param="path")
    # '.' and '..' folded; StaticFiles then refuses absolute paths and any path leading out.
    return await _assets.get_response(posixpath.normpath(path), request.scope)


@router.api_route("/", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    """The web page (no key: it asks for one and calls the keyed API with it)."""
    return await _serve("index.html", request)


@router.api_route("/ui/{path:path}", methods=["GET", "HEAD"])
async def asset(path: str, request: Request) -> Response:
    """The page's scripts, styles and images."""
    return await _serve(path, request)
