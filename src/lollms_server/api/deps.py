"""Request dependencies: the API-key check and access to the services on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lollms_server.api.auth import authenticate, header_key
from lollms_server.api.lean import request_only
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.registry import BindingRegistry
from lollms_server.generation.service import GenerationService

__all__ = [
    "ApiKey",
    "Bindings",
    "Generation",
    "Registry",
    "require_api_key",
]


@request_only
async def require_api_key(request: Request) -> str:
    """Return the name of the caller's key; 401 when it is missing or wrong. One plain
    dependency on the hot path: the two ways to send the key are declared in the OpenAPI
    document by api/openapi.py, not by FastAPI security dependencies solved per request."""
    return authenticate(request, header_key(request))


# The accessors are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
# pool, a thread hand-off on every request for what is an attribute read.
@request_only
async def _generation(request: Request) -> GenerationService:
    service: GenerationService = request.app.state.generation
    return service


@request_only
async def _bindings(request: Request) -> BindingManager:
    manager: BindingManager = request.app.state.bindings
    return manager


@request_only
async def _registry(request: Request) -> BindingRegistry:
    registry: BindingRegistry = request.app.state.registry
    return registry


ApiKey = Annotated[str, Depends(require_api_key)]
Generation = Annotated[GenerationService, Depends(_generation)]
Bindings = Annotated[BindingManager, Depends(_bindings)]
Registry = Annotated[BindingRegistry, Depends(_registry)]
