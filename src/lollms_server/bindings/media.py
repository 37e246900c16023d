"""What media bindings share: request options, and encoders for PNG, WAV and MP4.

Media requests carry their options in ``BindingRequest.extra`` (the native API's
``parameters``); :func:`media_options` validates them once, so every media binding reports a
bad value the same way (400 naming the parameter).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lollms_server.bindings.types import BindingRequest, MediaPart
from lollms_server.errors import BadRequest

__all__ = [
    "MediaOptions",
    "encode_image",
    "encode_mp4",
    "encode_wav",
    "input_image",
    "media_options",
    "prompt_of",
]

_ALIASES = {
    "num_inference_steps": "steps",
    "guidance_scale": "guidance",
    "num_images": "n",
    "num_images_per_prompt": "n",
    "length_seconds": "duration",
    "audio_length_in_s": "duration",
}


class MediaOptions(BaseModel):
    """Options of image, video, music and speech requests (all optional)."""

    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(None, ge=8, le=8192)
    height: int | None = Field(None, ge=8, le=8192)
    steps: int | None = Field(None, ge=1, le=1000)
    guidance: float | None = Field(None, ge=0, le=100)
    negative_prompt: str | None = None
    n: int = Field(1, ge=1, le=16, description="Images per request.")
    strength: float | None = Field(None, gt=0, le=1, description="Image-to-image strength.")
    num_frames: int | None = Field(None, ge=1, le=1024)
    fps: int | None = Field(None, ge=1, le=120)
    duration: float | None = Field(None, gt=0, le=600, description="Seconds of audio.")
    voice: str | None = None
    speaker: int | None = Field(None, ge=0)
    speed: float | None = Field(None, ge=0.25, le=4.0)
    format: Literal["png", "jpeg", "webp", "wav", "mp4"] | None = None


def media_options(request: BindingRequest, allowed: Sequence[str] | None = None) -> MediaOptions:
    """The request's media options; 400 naming the first bad or (given ``allowed``) unused
    parameter."""
    values: dict[str, Any] = {_ALIASES.get(k, k): v for k, v in request.extra.items()}
    if allowed is not None:
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise BadRequest(
                f"Parameter(s) {', '.join(unknown)} do not apply to '{request.generation_type}' "
                f"here; accepted: {', '.join(sorted(allowed))}.",
                param=f"parameters.{unknown[0]}",
            )
    try:
        return MediaOptions.model_validate(values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise BadRequest(f"parameters.{where}: {err['msg']}", param=f"parameters.{where}") from None


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
