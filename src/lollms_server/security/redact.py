"""Secrets out of everything the server shows: binding settings, URLs, log records.

Fields typed ``SecretStr`` already dump as stars. This catches what plain strings may hold:
values under a secret-looking name, every header value (a ``Cookie`` is as secret as an
``Authorization``), and credentials written into a URL (``http://user:password@host``).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["REDACTED", "SecretFilter", "redact", "safe_url", "scrub"]

REDACTED = "***"
_SECRET_NAME = re.compile(
    r"(key|token|secret|password|passwd|auth|credential|cookie)", re.IGNORECASE
)
_HEADERS = re.compile(r"headers?$", re.IGNORECASE)
# A URL anywhere in a text (log lines, exception messages): scheme, userinfo, rest, query.
_URL = re.compile(
    r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/?#@]+@)?([^\s?#\"')]*)"
    r"(\?[^\s#\"')]*)?"
)


def safe_url(url: str) -> str:
    """``url`` without its credentials: the user:password part and the query string (where
    services such as Azure put ``api-key=...``) become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return scrub(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit(
        (parts.scheme, netloc, parts.path, REDACTED if parts.query else "", parts.fragment)
    )


def scrub(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced (see :func:`safe_url`)."""
    if "://" not in text:
        return text

    def clean(match: re.Match[str]) -> str:
        scheme, userinfo, rest, query = match.groups()
        return (
            scheme
            + (f"{REDACTED}@" if userinfo else "")
            + rest
            + (f"?{REDACTED}" if query and len(query) > 1 else query or "")
        )

    return _URL.sub(clean, text)


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (JSON-like) with anything that looks like a secret replaced."""
    if isinstance(value, dict):
        if key and _HEADERS.search(key):  # names are useful, values are credentials
            return {k: REDACTED if v not in (None, "") else v for k, v in value.items()}
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if key and _SECRET_NAME.search(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str) and "://" in value:
        return scrub(value)
    return value


class SecretFilter(logging.Filter):
    """Removes URL credentials from every log record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "://" in str(record.msg) or any("://" in str(a) for a in _args(record)):
            record.msg = scrub(record.getMessage())
            record.args = None
        return True


def _args(record: logging.LogRecord) -> tuple[Any, ...]:
    args = record.args
    if isinstance(args, tuple):
        return args
    return (args,) if args is not None else ()
