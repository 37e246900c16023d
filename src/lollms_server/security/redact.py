"""Secrets out of everything the server shows: binding settings, URLs, log records.

Fields typed ``SecretStr`` already dump as stars. This catches what plain strings may hold:
values under a secret-looking name, every header value (a ``Cookie`` is as secret as an
``Authorization``), and credentials written into a URL (``http://user:password@host``).
:class:`Redactor` removes known secret values (a binding's own key, headers, URL
credentials) from text that came from elsewhere: an upstream that echoes its request headers
in an error message must not hand them to the client.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

__all__ = [
    "MIN_SECRET_CHARS",
    "REDACTED",
    "Redactor",
    "SecretFilter",
    "header_secrets",
    "redact",
    "safe_url",
    "scrub",
    "url_secrets",
]

REDACTED = "***"
# Shorter values are not redacted: replacing every "on" or "1" would garble every message
# while hiding nothing worth hiding.
MIN_SECRET_CHARS = 4
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


class Redactor:
    """Replaces each occurrence of the given secret values with ``***``, in the forms an
    upstream may echo them (as is, JSON- or Python-escaped, URL-encoded), then scrubs URL
    credentials (see :func:`scrub`). Empty values and values shorter than
    ``MIN_SECRET_CHARS`` are ignored."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms = {
            form
            for secret in secrets
            if secret and len(secret) >= MIN_SECRET_CHARS
            for form in _forms(secret)
        }
        # Longest first: a secret that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        return scrub(text)


def _forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], quote(secret, safe="")}


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries: its user and password (raw, decoded, and as the Basic
    authorization an HTTP client makes of them) and its query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = [value for _, value in parse_qsl(parts.query)]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        pair = f"{unquote(user)}:{unquote(password)}"
        basic = base64.b64encode(pair.encode()).decode()
        found += [userinfo, user, password, unquote(user), unquote(password), basic]
    return found


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """Every header value, and its credential alone when a scheme precedes it
    (``Bearer <token>``)."""
    found: list[str] = []
    for value in headers.values():
        found += [value, value.split(" ", 1)[-1].strip()]
    return found


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
