"""What a binding receives (requests) and describes (models)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BindingContext",
    "BindingRequest",
    "EmbeddingResult",
    "MEDIA_ALIASES",
    "MediaOptions",
    "MediaPart",
    "Message",
    "ModelInfo",
    "SamplingParams",
]

MediaKind = Literal["image", "audio", "video"]

MEDIA_ALIASES = {
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


@dataclass(frozen=True, slots=True)
class MediaPart:
    """An input file attached to a message; ``data`` is the decoded bytes."""

    kind: MediaKind
    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation: its role, text, attached media and tool round trips."""

    role: str
    content: str
    media: tuple[MediaPart, ...] = ()
    # Tool calling round trips: an assistant turn that called tools, or a tool's result.
    tool_calls: tuple[Mapping[str, Any], ...] = ()  # OpenAI shape: {id, type, function}
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings; ``None`` means "the engine's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repeat_penalty: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @classmethod
    def from_wire(
        cls,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        repeat_penalty: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
    ) -> SamplingParams:
        """The one conversion of a client's sampling fields, whatever its dialect: a stop
        given as one string or a list (empty ones dropped), ``max_tokens`` of 0 or less and
        ``seed`` -1 meaning "the engine's default" (as Ollama and lollms send them)."""
        stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
        return cls(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            repeat_penalty=repeat_penalty,
            max_tokens=max_tokens if max_tokens is not None and max_tokens > 0 else None,
            seed=None if seed == -1 else seed,
            stop=tuple(s for s in stops if s),
        )


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """One generation request, as the binding sees it.

    ``messages`` is the conversation (chat template applied by the binding); when
    ``raw_prompt`` is set the binding sends that text as is, without a chat template.
    """

    model: str
    generation_type: str = "ttt"
    messages: tuple[Message, ...] = ()
    raw_prompt: str | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    extra: Mapping[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None  # the client's wish, for backends that manage their own
    tools: tuple[Mapping[str, Any], ...] = ()  # OpenAI-shape function definitions
    tool_choice: Any = None
    media: MediaOptions = field(default_factory=lambda: MediaOptions())  # tti/ttv/ttm/tts
    json_schema: Mapping[str, Any] | None = None  # structured output: the answer's schema
    # False when the client takes the whole answer at once: a relay may then ask its upstream
    # for one answer instead of a stream (the binding still yields events).
    stream: bool = True


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """Vectors for texts, in order; ``tokens`` counted after truncation."""

    vectors: list[list[float]]
    tokens: int
    truncated: int = 0  # texts cut at the model's length limit


def _nobody(instance: str, model: str, reason: str) -> None:
    """The default listener of ``model_lost``: nothing to tell (a binding built by hand)."""


@dataclass(frozen=True, slots=True)
class BindingContext:
    """What the server gives every binding instance: its name, the shared folders, and a way
    to tell the server that a loaded model was lost."""

    instance_name: str
    models_path: Path
    on_model_lost: Callable[[str, str, str], None] = _nobody  # (instance, model, reason)

    def model_lost(self, model: str, reason: str) -> None:
        """Tell the server that ``model`` is no longer loaded (its engine or host died): the
        scheduler marks it unloaded and frees its memory; the next request loads it again."""
        self.on_model_lost(self.instance_name, model, reason)


class ModelInfo(BaseModel):
    """A model as listed by a binding."""

    name: str
    modalities: list[str] = Field(default_factory=lambda: ["ttt"])
    size_bytes: int | None = None
    context_size: int | None = None
    loaded: bool = False
    details: dict[str, Any] = Field(default_factory=dict)
