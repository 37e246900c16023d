"""Hugging Face transformers binding (torch; optional extra ``[transformers]``).

Models come from local folders (``save_pretrained`` layout), from hub ids already in the
local cache (never downloaded unless ``allow_download = true``), or from GGUF files
(``gguf_file``). Generation streams with ``TextIteratorStreamer`` from a worker thread; a
closed stream sets a stop flag checked after every token. Requests to one model are
serialised (one at a time): ``model.generate`` shares state (KV cache, RNG), and batching
unrelated prompts with different settings is not something transformers does for you;
``max_concurrency = 1`` tells the scheduler so that others wait in its queue instead.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from lollms_server.bindings.base import Binding, BindingConfig, Capabilities
from lollms_server.bindings.events import Event, Finished, TextDelta, Usage
from lollms_server.bindings.threads import Emit, stream_thread
from lollms_server.bindings.torch_support import LoadedModel, budget_of, free_memory
from lollms_server.bindings.types import BindingContext, BindingRequest, ModelInfo
from lollms_server.bindings.weights import models_in
from lollms_server.errors import BindingUnavailable, GenerationFailed, ModelNotFound

__all__ = ["TransformersBinding", "TransformersConfig"]

logger = logging.getLogger(__name__)
_WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")


class TransformersConfig(BindingConfig):
    models: dict[str, str] = Field(
        default_factory=dict, description="name -> local folder or hub id (local cache only)."
    )
    gguf_files: dict[str, str] = Field(
        default_factory=dict, description="name -> GGUF file name inside that model's folder."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1', 'mps'... or 'auto'.")
    device_map: str | None = Field(None, description="e.g. 'auto' (needs accelerate).")
    load_in_4bit: bool = Field(False, description="bitsandbytes 4-bit quantization.")
    allow_download: bool = Field(False, description="Let hub ids download when not cached.")
    default_max_tokens: int = Field(512, ge=1)
    trust_remote_code: bool = False


class TransformersBinding(Binding[TransformersConfig]):
    name: ClassVar[str] = "transformers"
    description: ClassVar[str] = "Hugging Face transformers models on torch."
    capabilities: ClassVar[Capabilities] = Capabilities(streaming=True, tokenizer=True)
    extra_parameters: ClassVar[frozenset[str] | None] = frozenset()

    def __init__(self, config: TransformersConfig, context: BindingContext) -> None:
        super().__init__(config, context)
        self._loaded: dict[str, LoadedModel] = {}

    # -- models ----------------------------------------------------------------------------
    def _sources(self) -> dict[str, str]:
        return models_in(self.context.models_path, "config.json", self.config.models)

    def _source(self, model: str) -> str:
        sources = self._sources()
        if model not in sources:
            raise ModelNotFound(model, self.instance_name, sources)
        return sources[model]

    async def list_models(self) -> list[ModelInfo]:
        return [
            ModelInfo(
                name=name,
                size_bytes=_weights_size(src),
                loaded=name in self._loaded,
                details={"source": src},
            )
            for name, src in self._sources().items()
        ]

    async def model_info(self, model: str) -> ModelInfo:
        source = self._source(model)
        loaded = self._loaded.get(model)
        context = None
        if loaded is not None:
            context = getattr(loaded.model.config, "max_position_embeddings", None)
        return ModelInfo(
            name=model,
            size_bytes=_weights_size(source),
            context_size=context,
            loaded=loaded is not None,
            details={"source": source},
        )

    def memory_estimate(self, model: str) -> int | None:
        try:
            return _weights_size(self._source(model))
        except ModelNotFound:
            return None

    def memory_used(self, model: str) -> int | None:
        loaded = self._loaded.get(model)
        return int(loaded.model.get_memory_footprint()) if loaded else None

    def memory_device(self, model: str) -> str:
        return budget_of(self.config.device)

    # -- load / unload ---------------------------------------------------------------------
    async def load(self, model: str) -> None:
        if model in self._loaded:
            return
        source = self._source(model)
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise BindingUnavailable(
                "transformers/torch are not installed: pip install 'lollms_server[transformers]'"
            ) from exc
        try:
            self._loaded[model] = await asyncio.to_thread(self._load_sync, model, source)
        except (OSError, ValueError) as exc:
            raise BindingUnavailable(
                f"transformers could not load '{model}' from '{source}': {exc}"
            ) from exc

    def _load_sync(self, model: str, source: str) -> LoadedModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = {
            "local_files_only": not self.config.allow_download,
            "trust_remote_code": self.config.trust_remote_code,
        }
        if model in self.config.gguf_files:
            kwargs["gguf_file"] = self.config.gguf_files[model]
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        if self.config.dtype != "auto":
            kwargs["dtype"] = getattr(torch, self.config.dtype)
        if self.config.device_map:
            kwargs["device_map"] = self.config.device_map
        if self.config.load_in_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
                load_in_4bit=True
            )
        network: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if not self.config.device_map and not self.config.load_in_4bit:
            network = network.to(self.config.device)
        network.eval()
        return LoadedModel(network, tokenizer)

    async def unload(self, model: str) -> None:
        loaded = self._loaded.pop(model, None)
        if loaded is None:
            return
        del loaded
        free_memory()

    async def close(self) -> None:
        for model in list(self._loaded):
            await self.unload(model)

    # -- generation ------------------------------------------------------------------------
    def _input_ids(self, loaded: LoadedModel, request: BindingRequest) -> Any:
        tok = loaded.tokenizer
        if request.raw_prompt is not None:
            return tok(request.raw_prompt, return_tensors="pt").input_ids
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if getattr(tok, "chat_template", None):
            ids = tok.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            return ids["input_ids"]
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return tok(text, return_tensors="pt").input_ids

    def _generate_kwargs(self, request: BindingRequest, loaded: LoadedModel) -> dict[str, Any]:
        p = request.params
        sample = p.temperature is not None and p.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": p.max_tokens or self.config.default_max_tokens,
            "do_sample": sample,
        }
        if sample:
            kwargs["temperature"] = p.temperature
            if p.top_p is not None:
                kwargs["top_p"] = p.top_p
            if p.top_k is not None:
                kwargs["top_k"] = p.top_k
        if p.repeat_penalty is not None:
            kwargs["repetition_penalty"] = p.repeat_penalty
        if loaded.tokenizer.pad_token_id is None:
            kwargs["pad_token_id"] = loaded.tokenizer.eos_token_id
        return kwargs

    async def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        loaded = self._loaded.get(request.model)
        if loaded is None:
            raise BindingUnavailable(f"Model '{request.model}' is not loaded")
        input_ids = self._input_ids(loaded, request).to(loaded.model.device)
        kwargs = self._generate_kwargs(request, loaded)
        produced: list[int] = []
        decoder = _Decoder(loaded.tokenizer, request.params.stop)
        run = functools.partial(_run, loaded, request.params.seed, input_ids, kwargs, produced)
        tokens = stream_thread(run)
        try:
            async for ids in tokens:
                text, hit = decoder.feed(ids)
                if text:
                    yield TextDelta(text)
                if hit:
                    break
        finally:
            await tokens.aclose()  # type: ignore[attr-defined]  # stops and joins the thread
        rest = decoder.finish()
        if rest:
            yield TextDelta(rest)
        completion = produced[0] if produced else 0
        length = not decoder.stopped and completion >= kwargs["max_new_tokens"]
        yield Usage(int(input_ids.shape[-1]), completion)
        yield Finished("length" if length else "stop", {"engine": "transformers"})

    # -- tokenizer -------------------------------------------------------------------------
    def _tokenizer(self, model: str) -> Any:
        loaded = self._loaded.get(model)
        if loaded is None:
            raise BindingUnavailable(f"Model '{model}' is not loaded")
        return loaded.tokenizer

    async def tokenize(self, model: str, text: str) -> list[int]:
        return list(self._tokenizer(model).encode(text, add_special_tokens=False))

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        return str(self._tokenizer(model).decode(tokens, skip_special_tokens=True))


def _run(
    loaded: LoadedModel,
    seed: int | None,
    input_ids: Any,
    kwargs: dict[str, Any],
    produced: list[int],
    emit: Emit[list[int]],
    stop: threading.Event,
) -> None:
    """The blocking generation (in a worker thread): token ids go to ``emit`` one by one."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, set_seed

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return stop.is_set()

    with loaded.lock:  # one generation per model at a time (see the module doc)
        if seed is not None:
            set_seed(seed)
        try:
            with torch.inference_mode():
                out = loaded.model.generate(
                    input_ids,
                    streamer=_TokenStreamer(emit),
                    stopping_criteria=StoppingCriteriaList([_Stop()]),
                    **kwargs,
                )
        except Exception as exc:
            raise GenerationFailed(f"transformers failed: {type(exc).__name__}: {exc}") from exc
    produced.append(int(out.shape[-1] - input_ids.shape[-1]))


class _TokenStreamer:
    """Hands generated token ids from ``generate`` (a transformers streamer) to the loop, one
    token per call: true token-by-token streaming."""

    def __init__(self, emit: Emit[list[int]]) -> None:
        self.emit = emit
        self.prompt_seen = False

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        self.emit([int(t) for t in value.reshape(-1).tolist()])

    def end(self) -> None:
        """Nothing to do: the thread's return ends the stream."""


class _Decoder:
    """Token ids to text, never splitting a multi-byte character, cut at stop strings."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        self.splitter = _StopSplitter(stops)
        self.ids: list[int] = []
        self.emitted = ""

    @property
    def stopped(self) -> bool:
        return self.splitter.stopped

    def feed(self, ids: list[int]) -> tuple[str, bool]:
        """The new text for ``ids`` and whether a stop string was reached."""
        self.ids.extend(ids)
        # Decode the whole answer so far: a token may complete a multi-byte character begun
        # by the previous one; a trailing replacement char waits for the rest.
        decoded = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if decoded.endswith("\ufffd") or not decoded.startswith(self.emitted):
            return "", False
        piece, self.emitted = decoded[len(self.emitted) :], decoded
        return self.splitter.feed(piece) if piece else ("", False)

    def finish(self) -> str:
        """What was held back (a possible stop string's start, an incomplete character)."""
        if self.splitter.stopped:
            return ""
        final = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        text = ""
        if final.startswith(self.emitted) and len(final) > len(self.emitted):
            text, _ = self.splitter.feed(final[len(self.emitted) :])
        return text if self.splitter.stopped else text + self.splitter.flush()


class _StopSplitter:
    """Cut the stream at the first stop string, holding back text that may begin one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.buffer += text
        cuts = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if cuts:
            out, self.buffer, self.stopped = self.buffer[: min(cuts)], "", True
            return out, True
        safe = len(self.buffer) - self.keep
        out, self.buffer = self.buffer[: max(safe, 0)], self.buffer[max(safe, 0) :]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


def _weights_size(source: str) -> int | None:
    folder = Path(source)
    if not folder.is_dir():
        return None
    return sum(f.stat().st_size for pattern in _WEIGHTS for f in folder.glob(pattern)) or None
