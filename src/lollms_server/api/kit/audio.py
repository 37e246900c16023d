"""Speech in the formats OpenAI clients ask for: mp3, opus, aac and flac, encoded with PyAV.

PyAV (``av``) is optional (the ``[piper]``, ``[transformers]`` and ``[diffusers]`` extras
install it) and imported only when a compressed format is asked for; without it such a
request is a 501 naming ``response_format``.
"""

from __future__ import annotations

import io
from typing import Any

from lollms_server.errors import BadRequest, NotServed

__all__ = ["AUDIO_TYPES", "encode_audio", "require_av"]

AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",  # Ogg Opus, as OpenAI sends it
    "aac": "audio/aac",  # ADTS frames
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
# format -> (container, codec, sample rate: None keeps the source's)
_CODECS: dict[str, tuple[str, str, int | None]] = {
    "mp3": ("mp3", "libmp3lame", None),
    "opus": ("ogg", "libopus", 48000),  # Opus runs at 48 kHz (or 8/12/16/24)
    "aac": ("adts", "aac", None),
    "flac": ("flac", "flac", None),
}


def require_av() -> Any:
    """The ``av`` module (a 501 naming ``response_format`` when it is not installed)."""
    try:
        import av
    except ImportError:
        raise NotServed(
            "Compressed speech (mp3, opus, aac, flac) needs PyAV: "
            "pip install 'lollms_server[piper]' (or ask for 'wav' or 'pcm').",
            param="response_format",
        ) from None
    return av


def encode_audio(audio: bytes, fmt: str) -> bytes:
    """``audio`` (any file PyAV reads: WAV from the tts bindings) as ``fmt`` (mp3, opus,
    aac or flac)."""
    if fmt not in _CODECS:
        raise BadRequest(f"Unknown audio format '{fmt}'.", param="response_format")
    av = require_av()
    container, codec, rate = _CODECS[fmt]
    out = io.BytesIO()
    try:
        with av.open(io.BytesIO(audio)) as source, av.open(out, "w", format=container) as sink:
            _transcode(av, source, sink, codec, rate)
    except av.FFmpegError as exc:
        raise BadRequest(
            f"The speech could not be encoded as {fmt}: {exc}", param="response_format"
        ) from None
    return out.getvalue()


def _transcode(av: Any, source: Any, sink: Any, codec: str, rate: int | None) -> None:
    """Decode ``source``'s audio, resample it to what the encoder takes, and mux it."""
    heard = source.streams.audio[0]
    layout = "mono" if heard.codec_context.channels == 1 else "stereo"
    stream = sink.add_stream(codec, rate=rate or heard.codec_context.sample_rate, layout=layout)
    resampler = av.AudioResampler(
        format=stream.codec_context.format, layout=layout, rate=stream.codec_context.sample_rate
    )
    for frame in source.decode(heard):
        frame.pts = None
        for piece in resampler.resample(frame):
            sink.mux(stream.encode(piece))
    for piece in resampler.resample(None):
        sink.mux(stream.encode(piece))
    sink.mux(stream.encode(None))
