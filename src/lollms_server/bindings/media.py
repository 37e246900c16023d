"""What media bindings share: request options, and encoders for PNG, WAV and MP4.

Media requests carry their options typed, in ``BindingRequest.media``: the front ends build
them with :func:`parse_media` (one validation, so every media binding reports a bad value the
same way: 400 naming the parameter) and each binding takes the ones it uses with
:func:`media_options`.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from lollms_server.bindings.types import MEDIA_ALIASES, BindingRequest, MediaOptions, MediaPart
from lollms_server.errors import BadRequest

__all__ = [
    "MediaOptions",
    "encode_image",
    "encode_mp4",
    "encode_wav",
    "input_image",
    "media_options",
    "parse_media",
    "prompt_of",
]


def parse_media(values: Mapping[str, Any]) -> tuple[MediaOptions, dict[str, Any]]:
    """Split a client's ``parameters`` into media options (validated: a bad value is a 400
    naming ``parameters.<name>``; aliases such as ``num_inference_steps`` accepted) and the
    rest (engine options)."""
    media: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in values.items():
        name = MEDIA_ALIASES.get(key, key)
        if name in MediaOptions.model_fields:
            media[name] = value
        else:
            rest[key] = value
    try:
        return MediaOptions.model_validate(media), rest
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"parameters.{where}: {err['msg']}", param=f"parameters.{where}") from None


def media_options(request: BindingRequest, allowed: Sequence[str] | None = None) -> MediaOptions:
    """The request's media options; 400 naming the first one (given ``allowed``) that this
    binding does not use for this request."""
    if allowed is not None:
        unknown = sorted(request.media.model_fields_set - set(allowed))
        if unknown:
            raise BadRequest(
                f"Parameter(s) {', '.join(unknown)} do not apply to '{request.generation_type}' "
                f"here; accepted: {', '.join(sorted(allowed))}.",
                param=f"parameters.{unknown[0]}",
            )
    return request.media


def prompt_of(request: BindingRequest) -> str:
    """The text a media request describes (the last user message, or the raw prompt)."""
    if request.raw_prompt is not None:
        return request.raw_prompt
    for message in reversed(request.messages):
        if message.role == "user" and message.content:
            return message.content
    raise BadRequest("A media request needs a text prompt.", param="prompt")


def input_image(request: BindingRequest) -> MediaPart | None:
    """The last image attached to the request (image-to-image), if any."""
    images = [m for message in request.messages for m in message.media if m.kind == "image"]
    return images[-1] if images else None


def encode_image(image: Any, fmt: str = "png") -> tuple[bytes, str]:
    """A PIL image as bytes and mime type."""
    buffer = io.BytesIO()
    pil_format = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}[fmt]
    (image.convert("RGB") if fmt == "jpeg" else image).save(buffer, format=pil_format)
    return buffer.getvalue(), f"image/{fmt}"


def encode_wav(samples: Any, sample_rate: int) -> bytes:
    """16-bit PCM WAV from float samples in [-1, 1], shaped (n,) or (channels, n)."""
    import numpy as np

    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None, :]
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").T  # interleaved frames
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(audio.shape[0])
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def encode_mp4(frames: Any, fps: int) -> bytes:
    """H.264 MP4 (PyAV's bundled FFmpeg) from frames shaped (f, h, w, 3), floats in [0, 1]
    or uint8. Odd sizes are padded to even (yuv420p needs it)."""
    import av
    import numpy as np

    video = np.asarray(frames)
    if video.dtype != np.uint8:
        video = (np.clip(video, 0.0, 1.0) * 255).round().astype(np.uint8)
    _, height, width, _ = video.shape
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return buffer.getvalue()
