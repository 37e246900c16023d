"""Hugging Face diffusers binding: text-to-image (and image-to-image) and text-to-video.

Pipelines load from a local folder (``save_pretrained`` layout with ``model_index.json``) or a
hub id already in the local cache, through ``AutoPipelineForText2Image`` (image pipelines of
any family: SD 1.x/2.x, SDXL, SD3, Flux...) or ``DiffusionPipeline`` (video pipelines: Wan,
LTX-Video, CogVideoX...). Whether a model makes images or video comes from its pipeline class.
A request with an input image runs image-to-image (``AutoPipelineForImage2Image.from_pipe``,
sharing the loaded weights). Each step reports progress; closing the stream stops the
pipeline at its next step. Images are PNG (or JPEG/WebP), videos H.264 MP4 (PyAV).
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from lollms_server.bindings.base import Binding, Capabilities
from lollms_server.bindings.events import Event, Finished, MediaOutput, Step, Usage
from lollms_server.bindings.media import (
    MediaOptions,
    encode_image,
    encode_mp4,
    input_image,
    media_options,
    prompt_of,
)
from lollms_server.bindings.torch_support import (
    TorchConfig,
    budget_of,
    default_dtype,
    free_memory,
)
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.bindings.weights import checkpoint_bytes, models_in
from lollms_server.errors import BadRequest, BindingUnavailable, GenerationFailed, ModelNotFound

__all__ = ["DiffusersBinding", "DiffusersConfig", "pipeline_kind"]

logger = logging.getLogger(__name__)

_VIDEO_MARKERS = ("Video", "Wan", "LTX", "CogVideoX", "Mochi", "Allegro", "Latte", "SkyReels")
_AUDIO_MARKERS = ("Audio", "MusicLDM")
_IMAGE_OPTIONS = (
    "width",
    "height",
    "steps",
    "guidance",
    "negative_prompt",
    "n",
    "strength",
    "format",
)
_VIDEO_OPTIONS = (
    "width",
    "height",
    "steps",
    "guidance",
    "negative_prompt",
    "n",
    "num_frames",
    "fps",
    "format",
)


class DiffusersConfig(TorchConfig):
    offload: Literal["none", "model", "sequential"] = Field(
        "none", description="CPU offload: 'model' (whole sub-models) or 'sequential' (layers)."
    )
    attention_slicing: bool = False
    vae_tiling: bool = False
    default_fps: int = Field(16, ge=1, le=120)
    max_pixels: int = Field(
        2048 * 2048,
        ge=64 * 64,
        description="Largest width x height (a side given alone counts as a square).",
    )
    max_images: int = Field(8, ge=1, le=16, description="Largest n per request.")
    max_frames: int = Field(257, ge=1, le=1024, description="Largest num_frames.")
    max_steps: int = Field(100, ge=1, le=1000, description="Largest steps per request.")
    max_megapixel_steps: float = Field(
        5000.0,
        gt=0,
        description="Largest estimated work of one request: width x height (millions of "
        "pixels) x steps x frames x n, with 1024 per missing side and 50 steps when not "
        "given. A CPU-only instance may set it much lower.",
    )


@dataclass
class _Loaded:
    pipe: Any
    kind: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    img2img: Any = None


def _megapixel_steps(options: MediaOptions) -> float:
    """Estimated work of a request (sizes, steps and frames the pipeline would default to
    are taken as 1024, 50 and 1)."""
    width = options.width or options.height or 1024
    height = options.height or options.width or 1024
    frames = options.num_frames or 1
    return width * height / 1e6 * (options.steps or 50) * frames * options.n


def call_parameters(pipe: Any) -> frozenset[str]:
    """The named arguments of ``pipe(...)``: pipelines differ (no negative prompt in Flux
    2, no step callback in older ones), and extras would fail or be silently swallowed."""
    return frozenset(
        name
        for name, p in inspect.signature(pipe.__call__).parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )


class _Stopped(Exception):
    """Raised from the step callback when the client went away."""


def pipeline_kind(class_name: str) -> str:
    """``tti``, ``ttv`` or ``ttm`` from a diffusers pipeline class name."""
    if any(marker in class_name for marker in _AUDIO_MARKERS):
        return "ttm"
    if any(marker in class_name for marker in _VIDEO_MARKERS):
        return "ttv"
    return "tti"


def weight_bytes(folder: Path, dtype: str | None) -> int:
    """Bytes the pipeline's weights take once loaded in ``dtype`` (None: as stored)."""
    return checkpoint_bytes(folder, dtype, components=True)


class DiffusersBinding(Binding[DiffusersConfig]):
    name: ClassVar[str] = "diffusers"
    description: ClassVar[str] = "Hugging Face diffusers pipelines: images and video."
    modalities: ClassVar[frozenset[str]] = frozenset({"tti", "ttv"})
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=True, vision=True)
    extra_parameters: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, config: DiffusersConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self._loaded: dict[str, _Loaded] = {}

    # -- models ----------------------------------------------------------------------------
    def _sources(self) -> dict[str, str]:
        return models_in(self.context.models_path, "model_index.json", self.config.models)

    def _source(self, model: str) -> str:
        sources = self._sources()
        if model not in sources:
            raise ModelNotFound(model, self.instance_name, sources)
        return sources[model]

    def _folder(self, source: str) -> Path | None:
        """The pipeline's folder: the source itself, or its snapshot in the hub cache."""
        if Path(source).is_dir():
            return Path(source)
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        cached = try_to_load_from_cache(source, "model_index.json")
        return Path(cached).parent if isinstance(cached, str) else None

    def _class_name(self, model: str) -> str:
        folder = self._folder(self._source(model))
        if folder is None or not (folder / "model_index.json").is_file():
            raise ModelNotFound(model, self.instance_name, self._sources())
        return str(json.loads((folder / "model_index.json").read_text())["_class_name"])

    def kind(self, model: str) -> str:
        return pipeline_kind(self._class_name(model))

    def _info(self, name: str, source: str) -> ModelInfo:
        folder = self._folder(source)
        try:
            pipeline = self._class_name(name)
        except (ModelNotFound, OSError, ValueError, KeyError):
            pipeline = "unknown"
        return ModelInfo(
            name=name,
            modalities=[pipeline_kind(pipeline)],
            loaded=name in self._loaded,
            size_bytes=weight_bytes(folder, None) if folder else None,
            details={"source": source, "pipeline": pipeline},
        )

    async def list_models(self) -> list[ModelInfo]:
        return [self._info(name, src) for name, src in self._sources().items()]

    async def model_info(self, model: str) -> ModelInfo:
        return self._info(model, self._source(model))

    def _dtype_name(self) -> str:
        return default_dtype(self.config.dtype, self.config.device)

    def memory_estimate(self, model: str) -> int | None:
        try:
            folder = self._folder(self._source(model))
        except ModelNotFound:
            return None
        return weight_bytes(folder, self._dtype_name()) if folder else None

    def memory_used(self, model: str) -> int | None:
        loaded = self._loaded.get(model)
        if loaded is None:
            return None
        total = 0
        for component in loaded.pipe.components.values():
            for tensor in [
                *getattr(component, "parameters", list)(),
                *getattr(component, "buffers", list)(),
            ]:
                total += tensor.numel() * tensor.element_size()
        return total

    def memory_device(self, model: str) -> str:
        if self.config.offload == "sequential":  # layers stream in from system memory
            return "cpu"
        return budget_of(self.config.device)

    def max_concurrency(self, model: str) -> int:
        return 1  # one pipeline call at a time per model: it holds the whole device

    # -- load / unload ---------------------------------------------------------------------
    async def load(self, model: str) -> None:
        if model in self._loaded:
            return
        source = self._source(model)
        try:
            import diffusers  # noqa: F401
            import torch  # noqa: F401
        except ImportError as exc:
            raise BindingUnavailable(
                "diffusers/torch are not installed: pip install 'lollms_server[diffusers]'"
            ) from exc
        kind = self.kind(model)
        if kind == "ttm":
            raise BindingUnavailable(
                f"'{model}' is an audio pipeline; use the musicgen binding for ttm."
            )
        try:
            self._loaded[model] = await asyncio.to_thread(self._load_sync, source, kind)
        except (OSError, ValueError, TypeError) as exc:
            raise BindingUnavailable(
                f"diffusers could not load '{model}' from '{source}': {exc}"
            ) from exc

    def _load_sync(self, source: str, kind: str) -> _Loaded:
        import torch
        from diffusers import AutoPipelineForText2Image, DiffusionPipeline

        factory: Any = AutoPipelineForText2Image if kind == "tti" else DiffusionPipeline
        pipe = factory.from_pretrained(
            source,
            local_files_only=not self.config.allow_download,
            **{_dtype_keyword(): getattr(torch, self._dtype_name())},
        )
        if self.config.offload == "model":
            pipe.enable_model_cpu_offload(device=self.config.device)
        elif self.config.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=self.config.device)
        else:
            pipe = pipe.to(self.config.device)
        if self.config.attention_slicing:
            pipe.enable_attention_slicing()
        if self.config.vae_tiling and hasattr(pipe, "vae"):
            pipe.vae.enable_tiling()
        pipe.set_progress_bar_config(disable=True)
        return _Loaded(pipe, kind)

    async def unload(self, model: str) -> None:
        if self._loaded.pop(model, None) is None:
            return
        free_memory()

    async def close(self) -> None:
        for model in list(self._loaded):
            await self.unload(model)

    # -- generation ------------------------------------------------------------------------
    def check_request(self, request: BindingRequest) -> None:
        kind = self.kind(request.model)
        if kind != request.generation_type:
            raise BadRequest(
                f"'{request.model}' is a {kind} pipeline; it cannot serve "
                f"generation_type '{request.generation_type}'.",
                param="generation_type",
            )
        options = media_options(request, _IMAGE_OPTIONS if kind == "tti" else _VIDEO_OPTIONS)
        prompt_of(request)
        self._check_limits(options)
        source = input_image(request)
        if source is not None:
            if kind != "tti":
                raise BadRequest("Only image pipelines take an input image.", param="input_data")
            self._check_image(source.data, options)
        elif options.strength is not None:
            raise BadRequest(
                "parameters.strength applies to image-to-image: send an image.",
                param="parameters.strength",
            )
        for side in ("width", "height"):
            value = getattr(options, side)
            if value is not None and value % 8:
                raise BadRequest(
                    f"parameters.{side} must be a multiple of 8 (got {value}).",
                    param=f"parameters.{side}",
                )
        if kind == "ttv" and options.format not in (None, "mp4"):
            raise BadRequest("Videos are encoded as mp4.", param="parameters.format")
        if kind == "tti" and options.format in ("wav", "mp4"):
            raise BadRequest("Images are png, jpeg or webp.", param="parameters.format")

    def _check_limits(self, options: MediaOptions) -> None:
        """Work grows with pixels, images, frames and steps: each has its setting here."""
        # A side given alone: the pipeline picks the other, at worst as large (a square).
        width = options.width or options.height
        height = options.height or options.width
        if width and height and width * height > self.config.max_pixels:
            raise BadRequest(
                f"{width}x{height} is more than this instance's "
                f"max_pixels ({self.config.max_pixels}).",
                param="parameters.width" if options.width else "parameters.height",
            )
        if options.steps is not None and options.steps > self.config.max_steps:
            raise BadRequest(
                f"parameters.steps is at most {self.config.max_steps} here (max_steps).",
                param="parameters.steps",
            )
        if options.n > self.config.max_images:
            raise BadRequest(
                f"parameters.n is at most {self.config.max_images} here.", param="parameters.n"
            )
        if options.num_frames is not None and options.num_frames > self.config.max_frames:
            raise BadRequest(
                f"parameters.num_frames is at most {self.config.max_frames} here.",
                param="parameters.num_frames",
            )
        work = _megapixel_steps(options)
        if work > self.config.max_megapixel_steps:
            raise BadRequest(
                f"This request's estimated work ({work:.0f} megapixel-steps: width x height x "
                f"steps x frames x n) is over this instance's max_megapixel_steps "
                f"({self.config.max_megapixel_steps:g}); ask for fewer steps or pixels.",
                param="parameters.steps",
            )

    def _check_image(self, data: bytes, options: MediaOptions) -> None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as picture:
                size = picture.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
            raise BadRequest(
                f"The input image cannot be read: {type(exc).__name__}.", param="input_data"
            ) from None
        if not (options.width and options.height) and size[0] * size[1] > self.config.max_pixels:
            raise BadRequest(
                f"The input image ({size[0]}x{size[1]}) is larger than "
                f"max_pixels; give parameters.width and height.",
                param="input_data",
            )

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        loaded = self._loaded.get(request.model)
        if loaded is None:
            raise GenerationFailed(f"'{request.model}' is not loaded")
        options = media_options(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def report(item: Event | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                for event in self._run(loaded, request, options, stop, report):
                    report(event)
                report(None)
            except BaseException as exc:  # handed to the event loop, raised there
                report(exc)

        worker = loop.run_in_executor(None, work)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, _Stopped):
                    return
                if isinstance(item, BaseException):
                    raise _wrap(item)
                yield item
            yield Usage(prompt_tokens=0, completion_tokens=0)
            yield Finished("stop")
        finally:
            stop.set()  # the pipeline stops at its next step
            await asyncio.shield(worker)

    def _run(
        self,
        loaded: _Loaded,
        request: BindingRequest,
        options: MediaOptions,
        stop: threading.Event,
        report: Any,
    ) -> list[Event]:
        import torch

        seed = request.params.seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        total = options.steps or 0

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if stop.is_set():
                raise _Stopped()
            steps = getattr(pipe, "num_timesteps", None) or total
            report(
                Step(
                    "step_progress",
                    f"step {step + 1} of {steps}",
                    data={"step": step + 1, "total": steps},
                )
            )
            return kwargs

        common: dict[str, Any] = {
            "prompt": prompt_of(request),
            "generator": torch.Generator(device="cpu").manual_seed(seed),
        }
        for name, key in (
            ("width", "width"),
            ("height", "height"),
            ("steps", "num_inference_steps"),
            ("guidance", "guidance_scale"),
            ("negative_prompt", "negative_prompt"),
        ):
            if getattr(options, name) is not None:
                common[key] = getattr(options, name)
        accepted = call_parameters(loaded.pipe)
        refused = sorted(k for k in common if k not in accepted)
        if refused:
            raise BadRequest(
                f"This {type(loaded.pipe).__name__} does not take {', '.join(refused)}.",
                param=f"parameters.{refused[0]}",
            )
        if "callback_on_step_end" in accepted:
            common["callback_on_step_end"] = on_step
        elif "callback" in accepted:  # older pipelines: callback(step, timestep, latents)
            common["callback"] = lambda step, t, latents: on_step(loaded.pipe, step, t, {})
            if "callback_steps" in accepted:
                common["callback_steps"] = 1
        with loaded.lock:
            if loaded.kind == "ttv":
                return self._video(loaded, common, options, seed)
            return self._images(loaded, request, common, options, seed)

    def _images(
        self,
        loaded: _Loaded,
        request: BindingRequest,
        common: dict[str, Any],
        options: MediaOptions,
        seed: int,
    ) -> list[Event]:
        pipe = loaded.pipe
        source = input_image(request)
        if source is not None:
            from diffusers import AutoPipelineForImage2Image
            from PIL import Image

            if loaded.img2img is None:
                loaded.img2img = AutoPipelineForImage2Image.from_pipe(pipe)
                loaded.img2img.set_progress_bar_config(disable=True)
            pipe = loaded.img2img
            picture = Image.open(io.BytesIO(source.data)).convert("RGB")
            common["image"] = picture.resize(
                (common.get("width", picture.width), common.get("height", picture.height))
            )
            common.pop("width", None)
            common.pop("height", None)
            if options.strength is not None:
                common["strength"] = options.strength
        if "num_images_per_prompt" in call_parameters(pipe):
            common["num_images_per_prompt"] = options.n
        elif options.n > 1:
            raise BadRequest(
                f"This {type(pipe).__name__} makes one image per request.", param="parameters.n"
            )
        result = pipe(output_type="pil", **common)
        outputs: list[Event] = []
        for index, image in enumerate(result.images):
            data, mime = encode_image(image, options.format or "png")
            outputs.append(
                MediaOutput(
                    data,
                    mime,
                    "image",
                    {
                        "seed": seed,
                        "index": index,
                        "width": image.width,
                        "height": image.height,
                        "image_to_image": source is not None,
                    },
                )
            )
        return outputs

    def _video(
        self, loaded: _Loaded, common: dict[str, Any], options: MediaOptions, seed: int
    ) -> list[Event]:
        fps = options.fps or self.config.default_fps
        if options.num_frames is not None:
            common["num_frames"] = options.num_frames
        accepted = call_parameters(loaded.pipe)
        if "num_videos_per_prompt" in accepted:
            common["num_videos_per_prompt"] = options.n
        elif options.n > 1:
            raise BadRequest(
                f"This {type(loaded.pipe).__name__} makes one video per request.",
                param="parameters.n",
            )
        if options.num_frames is not None and "num_frames" not in accepted:
            raise BadRequest(
                f"This {type(loaded.pipe).__name__} does not take num_frames.",
                param="parameters.num_frames",
            )
        result = loaded.pipe(output_type="np", **common)
        outputs: list[Event] = []
        for index, frames in enumerate(result.frames):
            outputs.append(
                MediaOutput(
                    encode_mp4(frames, fps),
                    "video/mp4",
                    "video",
                    {
                        "seed": seed,
                        "index": index,
                        "frames": len(frames),
                        "fps": fps,
                        "width": int(frames.shape[2]),
                        "height": int(frames.shape[1]),
                    },
                )
            )
        return outputs


def _wrap(exc: BaseException) -> BaseException:
    if isinstance(exc, ValueError):  # the pipeline's own checks of sizes and arguments
        return BadRequest(f"diffusers rejected the request: {exc}")
    if isinstance(exc, BadRequest | GenerationFailed):
        return exc
    logger.error("diffusers pipeline failed: %r", exc)
    return GenerationFailed(f"diffusers pipeline failed: {type(exc).__name__}: {exc}")


def _dtype_keyword() -> str:
    """``from_pretrained``'s dtype argument: ``dtype`` since diffusers 0.40 (``torch_dtype``
    still works there, with a deprecation warning), ``torch_dtype`` before."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("diffusers").split(".")[:2])
    return "dtype" if (major, minor) >= (0, 40) else "torch_dtype"
