"""The one decoder of media that clients send as base64 (plain, or a ``data:`` URL)."""

from __future__ import annotations

import base64
import binascii

from lollms_server.bindings.types import MediaKind, MediaPart
from lollms_server.errors import BadRequest

__all__ = ["decode_media"]

DEFAULT_MIME = {"image": "image/png", "audio": "audio/wav", "video": "video/mp4"}


def decode_media(
    value: str,
    kind: MediaKind,
    param: str,
    *,
    mime_type: str | None = None,
    data_url_only: bool = False,
) -> MediaPart:
    """``value`` (base64, or a ``data:<mime>;base64,...`` URL) as a media part; a bad value is
    a 400 naming ``param``. ``data_url_only`` refuses anything else (OpenAI's image URLs:
    the server fetches nothing)."""
    data = value
    if value.startswith("data:"):
        header, _, data = value.partition(",")
        mime_type = mime_type or header[5:].split(";")[0] or None
    elif data_url_only:
        raise BadRequest(
            "Only data: URLs are accepted for images (the server fetches nothing).", param=param
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{param} is not valid base64.", param=param) from None
    return MediaPart(kind, raw, mime_type or DEFAULT_MIME[kind])
