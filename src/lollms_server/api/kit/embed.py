"""The one path of the embedding routes: a client's texts and model id to vectors."""

from __future__ import annotations

from fastapi import Request

from lollms_server.api.disconnect import cancel_on_disconnect
from lollms_server.bindings.types import EmbeddingResult
from lollms_server.generation.service import GenerationService

__all__ = ["embed_texts"]


async def embed_texts(
    request: Request, service: GenerationService, texts: str | list[str], model_id: str
) -> tuple[str, str, EmbeddingResult]:
    """``(instance, model, vectors)`` for one text or a list, with the model a client names
    (``instance/model``, an alias, ``default``...); stopped if the client leaves."""
    batch = [texts] if isinstance(texts, str) else list(texts)
    instance, model = await service.find_model(model_id, "embed")
    binding, model, result = await cancel_on_disconnect(
        request, service.embed(batch, instance, model)
    )
    return binding.instance_name, model, result
