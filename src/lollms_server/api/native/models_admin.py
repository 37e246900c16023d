"""Native routes that load, unload and pin models (the web page's dashboard buttons).

Keyed like every route. Models are named as for ``/v1``: ``instance/model``, an instance name
(its default model), ``default`` or a bare model name served by one instance. Unloading never
happens under a running generation: a model in use answers 409, as does one not loaded.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.deps import Generation, require_api_key
from lollms_server.bindings.base import Binding
from lollms_server.errors import LollmsError
from lollms_server.generation.service import GenerationService
from lollms_server.resources.scheduler import ModelState

__all__ = ["ModelBusy", "router"]

router = APIRouter(
    prefix="/api/v1/models", dependencies=[Depends(require_api_key)], tags=["models"]
)

GenerationType = Literal["ttt", "tti", "ttv", "ttm", "tts", "stt", "embed"]


class ModelBusy(LollmsError):
    """The model's state does not allow the change now (in use, not loaded)."""

    status_code = 409
    error_type = "model_busy"


class ModelTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1,
        max_length=512,
        description="'instance/model' (as GET /v1/models lists them), an instance name, "
        "'default', or a model name served by a single instance.",
    )
    generation_type: GenerationType = Field(
        "ttt", description="What 'default' or an instance name stands for (its default model)."
    )


class LoadRequest(ModelTarget):
    pin: bool = Field(False, description="Keep it loaded: never evicted, never expired.")


class PinRequest(ModelTarget):
    pinned: bool = Field(True, description="False: unpin (its keep_alive timer starts).")


async def _target(service: GenerationService, body: ModelTarget) -> tuple[Binding, str]:
    instance, model = await service.find_model(body.model, body.generation_type)
    return service.bindings.get(instance), model


def _describe(state: ModelState) -> dict[str, Any]:
    return {
        "model": state.key,
        "binding_name": state.binding.instance_name,
        "model_name": state.model,
        "status": state.status,
        "device": state.device,
        "pinned": state.pinned,
        "memory_bytes": state.need,
    }


@router.post("/load")
async def load_model(body: LoadRequest, service: Generation) -> dict[str, Any]:
    """Load a model now (waiting in the queue like a request); ``pin`` keeps it loaded."""
    binding, model = await _target(service, body)
    return _describe(await service.scheduler.load_model(binding, model, pin=body.pin))


@router.post("/pin")
async def pin_model(body: PinRequest, service: Generation) -> dict[str, Any]:
    """Pin a model (loading it if needed) or unpin it."""
    binding, model = await _target(service, body)
    return _describe(await service.scheduler.pin_model(binding, model, body.pinned))


@router.post("/unload")
async def unload_model(body: ModelTarget, service: Generation) -> dict[str, Any]:
    """Unload a model now, pinned or not; 409 while it runs generations or is not loaded."""
    binding, model = await _target(service, body)
    refusal = await service.scheduler.unload_model(binding, model)
    if refusal is not None:
        raise ModelBusy(f"Model '{binding.instance_name}/{model}' {refusal}.", param="model")
    return _describe(service.scheduler.state(binding, model))
