"""``lollms.security``: the path and access checks processors call.

On lollms_server a processor serves the request it was given (the server checked its key):
the access checks pass; paths are checked the way lollms checks them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = [
    "check_access",
    "forbid_remote_access",
    "sanitize_path",
    "sanitize_path_from_endpoint",
]

_SUSPICIOUS = re.compile(r"(\.\.)|[<>:\"|?*\x00-\x1f]|^~")


def sanitize_path(
    path: str | Path,
    allow_absolute_path: bool = False,
    error_text: str = "Absolute database path detected",
    exception_text: str = "Detected an attempt of path traversal. Are you kidding me?",
) -> str:
    """``path`` unchanged when it stays where it is meant to (no ``..``, no odd characters,
    absolute only when allowed); ``ValueError`` otherwise."""
    text = str(path)
    if not allow_absolute_path and (Path(text).is_absolute() or text.startswith(("/", "\\"))):
        raise ValueError(f"{error_text}: {text!r}")
    checked = text.split(":", 1)[-1] if allow_absolute_path else text  # a drive letter
    if _SUSPICIOUS.search(checked):
        raise ValueError(f"{exception_text}: {text!r}")
    return text


def sanitize_path_from_endpoint(
    path: str,
    error_text: str = "A suspected LFI attack detected",
    exception_text: str = "Invalid path!",
) -> str:
    """A relative path from a client, checked as :func:`sanitize_path` does."""
    return sanitize_path(path, False, error_text, exception_text)


def forbid_remote_access(lollms_elf_server: Any = None, exception_text: str = "") -> None:
    """Passes: the server already checked the request's key."""


def check_access(lollms_elf_server: Any = None, client_id: Any = None) -> Any:
    """Passes: a processor serves the request it was given (returns ``client_id``)."""
    return client_id


__getattr__ = missing_name(__name__)
