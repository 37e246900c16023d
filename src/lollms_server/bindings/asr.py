"""Speech to text with transformers' speech-recognition models (optional extra
``[transformers]``): Whisper and other ``AutoModelForSpeechSeq2Seq`` / CTC checkpoints,
from a local folder or a hub id in the local cache.

Audio arrives as a file in any container PyAV can read (WAV, MP3, OGG/Opus, FLAC, WebM, M4A)
and is decoded and resampled to the model's rate in the server; long recordings are cut in
30-second chunks by transformers' pipeline.
"""

from __future__ import annotations

import asyncio
import functools
import io
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lollms_server.bindings.base import Capabilities
from lollms_server.bindings.events import Event, Finished, TextDelta, Usage
from lollms_server.bindings.threads import run_stoppable
from lollms_server.bindings.torch_support import TorchBinding, TorchConfig
from lollms_server.bindings.types import BindingRequest, MediaPart, ModelInfo
from lollms_server.bindings.weights import checkpoint_bytes, local_folder
from lollms_server.errors import BadRequest, GenerationFailed, ModelNotFound

__all__ = ["ASRBinding", "ASRConfig", "decode_audio"]


class ASRConfig(TorchConfig):
    chunk_length_s: float = Field(
        30.0, gt=0, le=60, description="Long audio is cut in chunks of this length."
    )
    max_audio_s: float = Field(3600.0, gt=0, description="Longest recording accepted.")
    max_new_tokens: int = Field(440, ge=1, le=448, description="Tokens per chunk.")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(None, max_length=32)
    task: Literal["transcribe", "translate"] = "transcribe"


@dataclass
class _Loaded:
    pipeline: Any
    rate: int
    lock: threading.Lock = field(default_factory=threading.Lock)


def decode_audio(data: bytes, rate: int, max_seconds: float) -> Any:
    """Mono float32 samples at ``rate`` from an audio file (PyAV's bundled FFmpeg); a 400
    as soon as it lasts more than ``max_seconds`` (compressed silence is small on the wire
    and huge once decoded)."""
    import av
    import numpy as np

    limit = int(max_seconds * rate)
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks, total = [], 0
            for frame in [*container.decode(stream), None]:
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    total += len(chunk)
                    if total > limit:
                        raise BadRequest(
                            f"The audio lasts more than {max_seconds:g} s, the most accepted here.",
                            param="file",
                        )
                    chunks.append(chunk)
    except (av.error.FFmpegError, StopIteration, ValueError) as exc:
        raise BadRequest(
            f"The audio cannot be decoded: {type(exc).__name__}.", param="file"
        ) from None
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


class ASRBinding(TorchBinding[_Loaded, ASRConfig]):
    name: ClassVar[str] = "asr"
    description: ClassVar[str] = "Speech to text with transformers (Whisper and others)."
    modalities: ClassVar[frozenset[str]] = frozenset({"stt"})
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=False)
    extra_parameters: ClassVar[frozenset[str] | None] = frozenset({"language", "task"})
    what: ClassVar[str] = "speech model"
    needs: ClassVar[tuple[str, ...]] = ("torch", "transformers", "av")

    def _info(self, name: str) -> ModelInfo:
        folder = local_folder(self._source(name), "config.json")
        return ModelInfo(
            name=name,
            modalities=["stt"],
            loaded=name in self._loaded,
            size_bytes=checkpoint_bytes(folder) if folder else None,
            details={"source": self._source(name)},
        )

    async def model_info(self, model: str) -> ModelInfo:
        return self._info(model)

    def memory_estimate(self, model: str) -> int | None:
        try:
            folder = local_folder(self._source(model), "config.json")
        except ModelNotFound:
            return None
        return checkpoint_bytes(folder, self._dtype_name()) if folder else None

    def _network(self, loaded: _Loaded) -> Any:
        return loaded.pipeline.model

    def _load_sync(self, source: str) -> _Loaded:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForCTC,
            AutoModelForSpeechSeq2Seq,
            AutoProcessor,
            pipeline,
        )

        local = not self.config.allow_download
        config = AutoConfig.from_pretrained(source, local_files_only=local)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        factory: Any = AutoModelForSpeechSeq2Seq if seq2seq else AutoModelForCTC
        network = factory.from_pretrained(
            source, local_files_only=local, dtype=getattr(torch, self._dtype_name())
        )
        processors: Any = AutoProcessor
        processor = processors.from_pretrained(source, local_files_only=local)
        recognizer: Any = pipeline(
            "automatic-speech-recognition",
            model=network.to(self.config.device),
            tokenizer=processor.tokenizer,
            feature_extractor=processor.feature_extractor,
            device=self.config.device,
        )
        return _Loaded(recognizer, int(processor.feature_extractor.sampling_rate))

    @staticmethod
    def _audio(request: BindingRequest) -> MediaPart:
        parts = [m for message in request.messages for m in message.media if m.kind == "audio"]
        if len(parts) != 1:
            raise BadRequest("Speech to text needs exactly one audio input.", param="input_data")
        return parts[0]

    @staticmethod
    def _options(request: BindingRequest) -> _Options:
        try:
            return _Options.model_validate(dict(request.extra))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            raise BadRequest(
                f"parameters.{where}: {err['msg']}", param=f"parameters.{where}"
            ) from None

    def check_request(self, request: BindingRequest) -> None:
        self._options(request)
        if request.model:
            self._audio(request)

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        loaded = self._loaded.get(request.model)
        if loaded is None:
            raise GenerationFailed(f"'{request.model}' is not loaded")
        options = self._options(request)
        samples = await asyncio.to_thread(
            decode_audio, self._audio(request).data, loaded.rate, self.config.max_audio_s
        )
        seconds = len(samples) / loaded.rate
        if seconds < 0.1:
            raise BadRequest("The audio is empty or shorter than 0.1 s.", param="file")
        text = await run_stoppable(
            functools.partial(self._transcribe, loaded, samples, options, request)
        )
        yield TextDelta(text)
        yield Usage(prompt_tokens=0, completion_tokens=0)
        yield Finished("stop", {"duration_s": round(seconds, 3)})

    def _transcribe(
        self,
        loaded: _Loaded,
        samples: Any,
        options: _Options,
        request: BindingRequest,
        stop: threading.Event,
    ) -> str:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        seq2seq = str(getattr(loaded.pipeline, "type", "")).startswith("seq2seq")
        limit = int(getattr(loaded.pipeline.model.config, "max_target_positions", 448))
        tokens = max(1, min(self.config.max_new_tokens, limit - 8))  # room for the start tokens
        kwargs: dict[str, Any] = (
            {"max_new_tokens": tokens, "stopping_criteria": StoppingCriteriaList([_Stop()])}
            if seq2seq
            else {}
        )
        english = options.language is None or options.language.lower() in ("en", "english")
        if getattr(loaded.pipeline.model.config, "model_type", "") == "whisper":
            multilingual = getattr(
                loaded.pipeline.model.generation_config, "is_multilingual", False
            )
            if multilingual:
                kwargs["task"] = options.task
                if options.language:
                    kwargs["language"] = options.language
            elif options.task == "translate" or not english:
                raise BadRequest(
                    "This model is English-only: no language or translation.",
                    param="parameters.language",
                )
        elif options.task == "translate" or options.language:
            raise BadRequest(
                "Only Whisper models take a language or translate.", param="parameters.language"
            )
        if request.params.temperature and seq2seq:
            kwargs.update(do_sample=True, temperature=request.params.temperature)
        try:
            with loaded.lock:
                extra = {"generate_kwargs": kwargs} if seq2seq else {}
                result = loaded.pipeline(
                    {"raw": samples, "sampling_rate": loaded.rate},
                    chunk_length_s=self.config.chunk_length_s,
                    **extra,
                )
        except ValueError as exc:
            raise BadRequest(f"The speech model rejected the request: {exc}") from None
        except Exception as exc:
            raise GenerationFailed(
                f"Speech recognition failed: {type(exc).__name__}: {exc}"
            ) from exc
        if stop.is_set():
            raise GenerationFailed("cancelled")
        return str(result["text"]).strip()
