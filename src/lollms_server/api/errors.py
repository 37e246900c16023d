"""The one place where exceptions become the JSON error envelope.

``{"error": {"type": ..., "message": ..., "param": ...}}`` with the matching HTTP status;
inside a stream that already started, the same body is sent as an error event instead.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lollms_server.api.auth import authenticate, header_key
from lollms_server.api.responses import JSONResponse
from lollms_server.api.surrogates import LoneSurrogate
from lollms_server.config import Settings
from lollms_server.errors import BindingUnavailable, LollmsError, Unauthorized
from lollms_server.security.redact import REDACTED, Redactor, redact, scrub, url_secrets

__all__ = [
    "VALIDATION_AS_400_PREFIX",
    "AlreadyLogged",
    "envelope",
    "error_headers",
    "error_payload",
    "install_error_handlers",
    "log_unhandled",
    "remember_secrets",
    "validation_error_response",
]

logger = logging.getLogger(__name__)
# Routes whose validation errors are 400s: OpenAI's API answers 400 invalid_request_error (its
# SDK: BadRequestError); elsewhere they are 422s.
VALIDATION_AS_400_PREFIX = "/v1/"

_HTTP_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


def envelope(error_type: str, message: str, param: str | None = None) -> dict[str, Any]:
    # "code" repeats the type: OpenAI clients read it, and it costs nothing to others.
    # scrub: an upstream's error text may quote a URL with its credentials.
    return {
        "error": {"type": error_type, "message": scrub(message), "param": param, "code": error_type}
    }


def error_payload(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """Status and body for any exception; unknown ones become a bare 500 (logged)."""
    if isinstance(exc, LollmsError):
        return exc.status_code, envelope(exc.error_type, exc.message, exc.param)
    log_unhandled(exc)
    return 500, envelope("internal_error", "Internal server error; see the server log.")


# Set on an exception once logged: uvicorn logs again every exception that leaves the
# application, and Starlette re-raises it after the handler answered (see AlreadyLogged).
_LOGGED = "_lollms_server_logged"
_secrets: set[str] = set()
_redactor = Redactor(())


def log_unhandled(exc: BaseException, where: str = "") -> None:
    """Log an unexpected exception once, with its traceback, configured secrets and URL
    credentials removed (a handler's formatter would print ``exc_info`` unfiltered)."""
    if getattr(exc, _LOGGED, False):
        return
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    logger.error("Unhandled error%s:\n%s", f" in {where}" if where else "", _redactor(text))
    # An exception type with __slots__ cannot be marked: uvicorn would log it a second time.
    with contextlib.suppress(AttributeError):
        setattr(exc, _LOGGED, True)


class AlreadyLogged(logging.Filter):
    """Drops a record whose exception :func:`log_unhandled` already logged (for uvicorn's
    ``Exception in ASGI application``, which would repeat the traceback, unfiltered)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, _LOGGED, False)


def remember_secrets(values: Iterable[str]) -> None:
    """Add values that no log line of an unhandled error may show (kept for the process:
    the union over every app created in it, so more is removed, never less)."""
    global _redactor
    new = {value for value in values if value} - _secrets
    if new:
        _secrets.update(new)
        _redactor = Redactor(_secrets)


def _settings_secrets(settings: Settings) -> list[str]:
    """The client keys, and what the binding tables hold under secret-looking names, in
    headers and in URLs (what ``redact`` would hide when a table is shown)."""
    found = [k.key.get_secret_value() for k in settings.security.api_keys if k.key]
    for table in settings.bindings.values():
        found += _hidden(table, redact(table))
    return found


def _hidden(original: Any, shown: Any) -> list[str]:
    if isinstance(original, dict) and isinstance(shown, dict):
        return [s for k, v in original.items() for s in _hidden(v, shown.get(k))]
    if isinstance(original, list) and isinstance(shown, list):
        return [s for v, w in zip(original, shown, strict=False) for s in _hidden(v, w)]
    if not isinstance(original, str) or original == shown:
        return []
    if shown == REDACTED:  # a header value "Bearer <token>": the token alone as well
        return [original, original.split(" ", 1)[-1].strip()]
    return url_secrets(original)


# Errors that the same request would meet again: told to OpenAI's SDKs, which otherwise retry
# every 409 and 5xx twice (re-running a whole failed generation each time).
_FINAL_STATUSES = frozenset({409, 500, 502, 507})


def error_headers(exc: BaseException) -> dict[str, str] | None:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": exc.challenge}
    if isinstance(exc, BindingUnavailable):
        return {"Retry-After": str(exc.retry_after or 5)}
    if isinstance(exc, LollmsError) and exc.status_code in _FINAL_STATUSES:
        return {"x-should-retry": "false"}
    return None


async def _lollms_error(request: Request, exc: Exception) -> JSONResponse:
    status, body = error_payload(exc)
    return JSONResponse(body, status_code=status, headers=error_headers(exc))


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def validation_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    unreadable = any(e.get("type") == "json_invalid" for e in errors)
    content_type = request.headers.get("content-type", "")
    wrong_type = tuple(errors[0].get("loc", ())) == ("body",) and "json" not in content_type
    if unreadable or wrong_type:
        # FastAPI reads the body before the key check runs: do it here, so that an
        # unauthenticated caller gets a 401 rather than a description of its body.
        try:
            authenticate(request, header_key(request))
        except Unauthorized as denied:
            return await _lollms_error(request, denied)
    if unreadable:
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        message = f"Request body is not valid JSON: {detail.get('ctx', {}).get('error', '')}"
        return JSONResponse(envelope("invalid_json", message.strip().rstrip(":")), 400)
    if wrong_type:
        message = (
            f"Request body must be JSON sent with 'Content-Type: application/json' "
            f"(got '{content_type or 'no content type'}')."
        )
        return JSONResponse(envelope("invalid_content_type", message, "body"), 415)
    first = errors[0]
    param = _loc(tuple(first.get("loc", ())))
    parts = [f"{_loc(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in errors[:5]]
    if request.url.path.startswith(VALIDATION_AS_400_PREFIX):
        return JSONResponse(envelope("invalid_request_error", "; ".join(parts), param), 400)
    return JSONResponse(envelope("validation_error", "; ".join(parts), param), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, LoneSurrogate):
        return await _lone_surrogate(request, exc)
    error_type = _HTTP_TYPES.get(exc.status_code, "http_error")
    return JSONResponse(
        envelope(error_type, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


async def _lone_surrogate(request: Request, exc: LoneSurrogate) -> JSONResponse:
    """400 naming the field; found while the body was read, before the key check: so the
    key is checked here first (an unauthenticated caller gets its 401)."""
    try:
        authenticate(request, header_key(request) or exc.body_key)
    except Unauthorized as denied:
        return await _lollms_error(request, denied)
    body = envelope("invalid_request_error", str(exc.detail), exc.param)
    return JSONResponse(body, status_code=400)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log_unhandled(exc, f"{request.method} {request.url.path}")
    status, body = error_payload(exc)
    return JSONResponse(body, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers of every error; the app's configured secrets are kept out of the log
    lines of unexpected errors."""
    settings = getattr(app.state, "settings", None)
    if isinstance(settings, Settings):
        remember_secrets(_settings_secrets(settings))
    app.add_exception_handler(LollmsError, _lollms_error)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
