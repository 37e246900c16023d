"""Text-to-music with MusicGen through transformers (optional extra ``[transformers]``).

Models are MusicGen checkpoints (``save_pretrained`` folders, or hub ids in the local cache)
such as facebook/musicgen-small. ``duration`` (seconds) sets how many audio frames are
generated; the output is trimmed to exactly that length and returned as 16-bit WAV. Closing
the stream stops generation at the next frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import Field, model_validator

from lollms_server.bindings.base import Capabilities
from lollms_server.bindings.events import Event, Finished, MediaOutput, Usage
from lollms_server.bindings.media import encode_wav, media_options, prompt_of
from lollms_server.bindings.torch_support import LoadedModel, TorchBinding, TorchConfig
from lollms_server.bindings.types import BindingRequest, ModelInfo
from lollms_server.bindings.weights import checkpoint_bytes, local_folder
from lollms_server.errors import BadRequest, GenerationFailed, ModelNotFound

__all__ = ["MusicGenBinding", "MusicGenConfig"]

_OPTIONS = ("duration", "guidance", "format")


class MusicGenConfig(TorchConfig):
    default_duration: float = Field(
        8.0, gt=0, le=600, description="Seconds of music when a request names none."
    )
    max_duration: float = Field(
        60.0, gt=0, le=600, description="Longest duration a request may ask (seconds)."
    )
    max_prompt_chars: int = Field(
        2000,
        ge=1,
        description="Longest prompt (characters): the text encoder's memory grows with the "
        "square of its length.",
    )

    @model_validator(mode="after")
    def _default_within_max(self) -> MusicGenConfig:
        if self.default_duration > self.max_duration:
            raise ValueError(
                f"default_duration ({self.default_duration:g}) is above max_duration "
                f"({self.max_duration:g})."
            )
        return self


class MusicGenBinding(TorchBinding[LoadedModel, MusicGenConfig]):
    name: ClassVar[str] = "musicgen"
    description: ClassVar[str] = "MusicGen text-to-music (transformers)."
    modalities: ClassVar[frozenset[str]] = frozenset({"ttm"})
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=False)
    extra_parameters: ClassVar[frozenset[str] | None] = frozenset()
    what: ClassVar[str] = "MusicGen"

    def _size(self, source: str, dtype: str | None = None) -> int | None:
        folder = local_folder(source, "config.json")
        return checkpoint_bytes(folder, dtype) if folder is not None else None

    async def model_info(self, model: str) -> ModelInfo:
        source = self._source(model)
        return ModelInfo(
            name=model,
            modalities=["ttm"],
            size_bytes=self._size(source),
            loaded=model in self._loaded,
            details={"source": source},
        )

    def memory_estimate(self, model: str) -> int | None:
        try:
            return self._size(self._source(model), self._dtype_name())
        except ModelNotFound:
            return None

    def _load_sync(self, source: str) -> LoadedModel:
        import torch
        from transformers import AutoTokenizer, MusicgenForConditionalGeneration

        local = not self.config.allow_download
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        network: Any = MusicgenForConditionalGeneration.from_pretrained(
            source, local_files_only=local, dtype=getattr(torch, self._dtype_name())
        )
        network = network.to(self.config.device).eval()
        return LoadedModel(network, tokenizer)

    def check_request(self, request: BindingRequest) -> None:
        options = media_options(request, _OPTIONS)
        if options.format not in (None, "wav"):
            raise BadRequest("MusicGen produces wav audio.", param="parameters.format")
        if len(prompt_of(request)) > self.config.max_prompt_chars:
            raise BadRequest(
                f"The prompt is at most {self.config.max_prompt_chars} characters here "
                "(max_prompt_chars).",
                param="prompt",
            )
        if request.params.temperature is not None and request.params.temperature <= 0:
            raise BadRequest(
                "MusicGen samples: temperature must be above 0.", param="parameters.temperature"
            )
        if options.duration is not None and options.duration > self.config.max_duration:
            raise BadRequest(
                f"parameters.duration is at most {self.config.max_duration:g} s here "
                "(max_duration).",
                param="parameters.duration",
            )

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        loaded = self._loaded.get(request.model)
        if loaded is None:
            raise GenerationFailed(f"'{request.model}' is not loaded")
        stop = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(self._generate, loaded, request, stop))
        try:
            samples, rate, seed, duration = await asyncio.shield(work)
        except (BadRequest, GenerationFailed):
            raise
        except ValueError as exc:  # transformers' own checks of generation arguments
            raise BadRequest(f"MusicGen rejected the request: {exc}") from None
        except Exception as exc:
            raise GenerationFailed(f"MusicGen failed: {type(exc).__name__}: {exc}") from exc
        finally:
            stop.set()
            if not work.done():
                with contextlib.suppress(Exception):
                    await work  # it stops at its next frame
        yield MediaOutput(
            encode_wav(samples, rate),
            "audio/wav",
            "audio",
            {"sample_rate": rate, "duration_s": duration, "seed": seed},
        )
        yield Usage(prompt_tokens=0, completion_tokens=0)
        yield Finished("stop")

    def _generate(
        self, loaded: LoadedModel, request: BindingRequest, stop: threading.Event
    ) -> tuple[Any, int, int, float]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

        options = media_options(request)
        duration = options.duration or self.config.default_duration
        audio_config = loaded.model.config.audio_encoder
        rate = int(audio_config.sampling_rate)
        codebooks = loaded.model.decoder.num_codebooks
        tokens = math.ceil(duration * audio_config.frame_rate) + codebooks
        seed = request.params.seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        inputs = loaded.tokenizer([prompt_of(request)], return_tensors="pt", padding=True)
        kwargs: dict[str, Any] = {
            "max_new_tokens": tokens,
            "do_sample": True,
            "stopping_criteria": StoppingCriteriaList([_Stop()]),
        }
        if options.guidance is not None:
            kwargs["guidance_scale"] = options.guidance
        if request.params.temperature is not None:
            kwargs["temperature"] = request.params.temperature
        with loaded.lock, torch.inference_mode():
            torch.manual_seed(seed)
            audio = loaded.model.generate(**inputs.to(loaded.model.device), **kwargs)
        if stop.is_set():
            raise GenerationFailed("cancelled")
        samples = audio[0].float().cpu().numpy()[:, : int(duration * rate)]
        return samples, rate, seed, round(samples.shape[-1] / rate, 3)
