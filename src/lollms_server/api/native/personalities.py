"""Native routes listing personalities and functions."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from lollms_server.api.deps import Generation, require_api_key
from lollms_server.errors import NotFound
from lollms_server.personalities.model import Personality
from lollms_server.security.paths import inside

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["personalities"]
)


@router.get("/list_personalities")
async def list_personalities(service: Generation) -> dict[str, Any]:
    """Every personality found in the configured folders, and the folders that failed."""
    registry = service.personalities
    return {
        "personalities": [p.summary() for p in registry.all()],
        "errors": [
            {"folder": problem.path.rsplit("/", 1)[-1], "reason": problem.reason}
            for problem in registry.problems
        ],
    }


@router.get(
    "/personalities/{name:path}/logo",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
async def personality_logo(name: str, service: Generation) -> FileResponse:
    """The personality's logo image (404 when it has none)."""
    personality = service.personalities.get(name)
    real = _contained_logo(personality, service.personalities.roots)
    if real is None or personality.logo is None:
        raise NotFound(f"Personality '{personality.id}' has no logo.", param="name")
    media_type = mimetypes.guess_type(personality.logo.name)[0] or "application/octet-stream"
    return FileResponse(real, media_type=media_type)


def _contained_logo(personality: Personality, roots: list[Path]) -> Path | None:
    """The logo's real path, checked at each request: files may have changed since loading
    (the logo, or the folder itself, replaced by a symbolic link leading out). The resolved
    path is what gets served, so the logo's name is not followed a second time."""
    logo, folder = personality.logo, personality.folder
    if logo is None or not inside(logo, folder):
        return None
    if not any(inside(folder, root) for root in roots):
        return None
    try:
        real = logo.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_file() else None


@router.get("/personalities/{name:path}")
async def get_personality(name: str, service: Generation) -> dict[str, Any]:
    """One personality in full: by id (``category/name``), folder name or display name."""
    return service.personalities.get(name).details()


@router.get("/list_functions")
async def list_functions(service: Generation) -> dict[str, Any]:
    """Functions from the configured folders, with their JSON schemas."""
    registry = service.functions
    return {
        "functions": [f.info() for f in registry.all()],
        "errors": [
            {"module": p["path"].rsplit("/", 1)[-1], "reason": p["reason"]}
            for p in registry.problems
        ],
    }
