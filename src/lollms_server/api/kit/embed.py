"""The one path of the embedding routes: a client's texts (or token ids) and model id to
vectors."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from lollms_server.api.disconnect import cancel_on_disconnect
from lollms_server.bindings.types import EmbeddingResult
from lollms_server.errors import BadRequest
from lollms_server.generation.service import GenerationService

__all__ = ["embed_texts"]

Inputs = str | list[str] | list[int] | list[list[int]]


async def embed_texts(
    request: Request, service: GenerationService, texts: Inputs, model_id: str
) -> tuple[str, str, EmbeddingResult]:
    """``(instance, model, vectors)`` for one text or a list, with the model a client names
    (``instance/model``, an alias, ``default``...); stopped if the client leaves. Token ids
    (one array or a list of arrays, as OpenAI clients send) are decoded with the model's own
    tokenizer first; a binding without one refuses them (400 naming ``input``)."""
    instance, model = await service.find_model(model_id, "embed")
    batch = await cancel_on_disconnect(request, _texts(service, instance, model, texts))
    binding, model, result = await cancel_on_disconnect(
        request, service.embed(batch, instance, model)
    )
    return binding.instance_name, model, result


async def _texts(service: GenerationService, instance: str, model: str, texts: Inputs) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not texts or all(isinstance(t, str) for t in texts):
        return [str(t) for t in texts]
    ids = cast(list[int], texts)  # one array of token ids, or a list of arrays
    arrays = [ids] if all(isinstance(t, int) for t in texts) else cast(list[list[int]], texts)
    return await _detokenize(service, instance, model, arrays)


async def _detokenize(
    service: GenerationService, instance: str, model: str, arrays: list[list[int]]
) -> list[str]:
    """The texts of token arrays, with the embedding model's tokenizer (model loaded)."""
    binding, model = await service.resolve("embed", instance, model)  # an embedding model
    if not binding.capabilities.tokenizer:
        raise BadRequest(
            f"Token arrays cannot be read by '{instance}/{model}' ({binding.name} has no "
            "tokenizer here): send the texts.",
            param="input",
        )
    if any(not a for a in arrays):
        raise BadRequest("A token array is empty.", param="input")
    await binding.model_info(model)
    lease = await service.scheduler.acquire(binding, model)
    try:
        return [await binding.detokenize(model, a) for a in arrays]
    finally:
        lease.release()
