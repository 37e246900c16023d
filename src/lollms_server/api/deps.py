"""Request dependencies: the API-key check and access to the services on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from lollms_server.api.auth import authenticate
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

# Declared as security schemes so the OpenAPI docs page offers "Authorize" with either form.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")


async def require_api_key(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
) -> str:
    """Return the name of the caller's key; 401 when it is missing or wrong."""
    # The Security parameters declare both schemes for the OpenAPI page ("Authorize").
    presented = bearer.credentials if bearer is not None else header_key
    return authenticate(request, presented)


# The accessors are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
# pool, a thread hand-off on every request for what is an attribute read.
async def _generation(request: Request) -> GenerationService:
    service: GenerationService = request.app.state.generation
    return service


async def _bindings(request: Request) -> BindingManager:
    manager: BindingManager = request.app.state.bindings
    return manager


async def _registry(request: Request) -> BindingRegistry:
    registry: BindingRegistry = request.app.state.registry
    return registry


ApiKey = Annotated[str, Depends(require_api_key)]
Generation = Annotated[GenerationService, Depends(_generation)]
Bindings = Annotated[BindingManager, Depends(_bindings)]
Registry = Annotated[BindingRegistry, Depends(_registry)]
