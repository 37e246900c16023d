"""Text embeddings with Hugging Face encoders (optional extra ``[transformers]``).

Any ``AutoModel`` encoder saved with ``save_pretrained`` (or a hub id in the local cache):
sentence-transformers checkpoints (all-MiniLM, bge, e5, gte...) and plain BERT-style models.
Token states are pooled (mean over the attention mask by default, or the first token, or the
last one for decoder embedders) and L2-normalised unless ``normalize = false``. Texts longer
than ``max_length`` tokens are truncated (reported in the response's usage).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from lollms_server.bindings.base import Capabilities
from lollms_server.bindings.events import Event
from lollms_server.bindings.threads import run_stoppable
from lollms_server.bindings.torch_support import LoadedModel, TorchBinding, TorchConfig
from lollms_server.bindings.types import (
    BindingRequest,
    EmbeddingResult,
    ModelInfo,
)
from lollms_server.bindings.weights import checkpoint_bytes, local_folder
from lollms_server.errors import BadRequest, GenerationFailed, ModelNotFound

__all__ = ["HFEmbeddingsBinding", "HFEmbeddingsConfig"]


class HFEmbeddingsConfig(TorchConfig):
    pooling: Literal["mean", "cls", "last"] = "mean"
    normalize: bool = Field(True, description="L2-normalise the vectors (cosine = dot).")
    max_length: int = Field(512, ge=1, le=32768, description="Tokens kept per text.")
    batch_size: int = Field(32, ge=1, le=1024)


class HFEmbeddingsBinding(TorchBinding[LoadedModel, HFEmbeddingsConfig]):
    name: ClassVar[str] = "hf_embeddings"
    description: ClassVar[str] = "Text embeddings from Hugging Face encoders."
    modalities: ClassVar[frozenset[str]] = frozenset({"embed"})
    capabilities: ClassVar[Capabilities] = Capabilities(
        streaming=False, tokenizer=True, embeddings=True
    )
    what: ClassVar[str] = "encoder"

    def _size(self, source: str) -> int | None:
        folder = local_folder(source, "config.json")
        if folder is None:
            return None
        dtype = None if self.config.dtype == "auto" else self.config.dtype
        return checkpoint_bytes(folder, dtype)

    def _info(self, name: str) -> ModelInfo:
        source = self._source(name)
        loaded = self._loaded.get(name)
        details: dict[str, Any] = {"source": source, "pooling": self.config.pooling}
        if loaded is not None:
            details["dimensions"] = int(loaded.model.config.hidden_size)
        return ModelInfo(
            name=name,
            modalities=["embed"],
            size_bytes=self._size(source),
            context_size=self.config.max_length,
            loaded=loaded is not None,
            details=details,
        )

    async def model_info(self, model: str) -> ModelInfo:
        return self._info(model)

    def memory_estimate(self, model: str) -> int | None:
        try:
            return self._size(self._source(model))
        except ModelNotFound:
            return None

    def _load_sync(self, source: str) -> LoadedModel:
        import torch
        from transformers import AutoModel, AutoTokenizer

        local = not self.config.allow_download
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        kwargs: dict[str, Any] = {"local_files_only": local}
        if self.config.dtype != "auto":
            kwargs["dtype"] = getattr(torch, self.config.dtype)
        network: Any = AutoModel.from_pretrained(source, **kwargs)
        tokenizer.padding_side = "right"  # the pooling reads positions from the right end
        if tokenizer.pad_token is None:  # decoder embedders often have none
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        return LoadedModel(network.to(self.config.device).eval(), tokenizer)

    def generate(self, request: BindingRequest) -> AsyncIterator[Event]:
        raise BadRequest(
            f"Binding instance '{self.instance_name}' only embeds; use "
            "/v1/embeddings or /api/v1/embed.",
            param="generation_type",
        )

    async def embed(self, model: str, texts: list[str]) -> EmbeddingResult:
        loaded = self._loaded.get(model)
        if loaded is None:
            raise GenerationFailed(f"'{model}' is not loaded")
        return await run_stoppable(functools.partial(self._embed_sync, loaded, texts))

    def _embed_sync(
        self, loaded: LoadedModel, texts: list[str], stop: threading.Event
    ) -> EmbeddingResult:
        import torch

        vectors: list[list[float]] = []
        tokens = truncated = 0
        with loaded.lock, torch.inference_mode():
            for start in range(0, len(texts), self.config.batch_size):
                if stop.is_set():
                    raise GenerationFailed("cancelled")
                batch = texts[start : start + self.config.batch_size]
                full = loaded.tokenizer(batch, add_special_tokens=True)["input_ids"]
                truncated += sum(len(ids) > self.config.max_length for ids in full)
                inputs = loaded.tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self.config.max_length,
                    return_tensors="pt",
                ).to(loaded.model.device)
                mask = inputs["attention_mask"]
                tokens += int(mask.sum())
                states = loaded.model(**inputs).last_hidden_state
                pooled = self._pool(states, mask)
                if self.config.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
                vectors.extend(pooled.float().cpu().tolist())
        return EmbeddingResult(vectors, tokens, truncated)

    # -- tokenizer (token-array inputs are decoded with it) -------------------------------
    def _tokenizer(self, model: str) -> Any:
        loaded = self._loaded.get(model)
        if loaded is None:
            raise GenerationFailed(f"'{model}' is not loaded")
        return loaded.tokenizer

    async def tokenize(self, model: str, text: str) -> list[int]:
        """The encoder's token ids of ``text`` (no special tokens)."""
        return list(self._tokenizer(model).encode(text, add_special_tokens=False))

    async def detokenize(self, model: str, tokens: list[int]) -> str:
        """The text of the encoder's token ids (special tokens dropped: embedding adds its
        own); an id outside the vocabulary is a 400 naming ``input``."""
        tokenizer = self._tokenizer(model)
        size = len(tokenizer)
        bad = next((t for t in tokens if not 0 <= t < size), None)
        if bad is not None:
            raise BadRequest(
                f"Token id {bad} is outside the vocabulary of '{model}' (0-{size - 1}).",
                param="input",
            )
        return str(tokenizer.decode(tokens, skip_special_tokens=True))

    def _pool(self, states: Any, mask: Any) -> Any:
        import torch

        if self.config.pooling == "cls":
            return states[:, 0]
        if self.config.pooling == "last":  # the last real token of each (right-padded) row
            last = mask.sum(dim=1) - 1
            return states[torch.arange(states.shape[0]), last]
        weights = mask.unsqueeze(-1).to(states.dtype)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
