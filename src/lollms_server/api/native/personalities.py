"""Native routes listing personalities and functions."""

from __future__ import annotations

import asyncio
import mimetypes
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from lollms_server.api.deps import Generation, require_api_key
from lollms_server.errors import NotFound
from lollms_server.personalities.deps import missing_packages, needs, refresh
from lollms_server.personalities.model import Personality
from lollms_server.security.paths import inside

__all__ = ["router"]

router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(require_api_key)], tags=["personalities"]
)


@router.get("/list_personalities")
async def list_personalities(service: Generation) -> dict[str, Any]:
    """Every personality found in the configured folders (with the packages each needs and
    does not find: ``missing_packages``), and the folders that failed."""
    registry = service.personalities

    def listing() -> list[dict[str, Any]]:  # reads scripts and the environment: off the loop
        refresh()
        return [{**p.summary(), "missing_packages": missing_packages(p)} for p in registry.all()]

    return {
        "personalities": await asyncio.to_thread(listing),
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


# Served as they are (inline); anything else is a download, so that an HTML or SVG file a
# processor wrote never runs as a page of the server's origin.
_INLINE = ("image/png", "image/jpeg", "image/gif", "image/webp", "audio/", "video/", "text/plain")


@router.get(
    "/personality_files/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def personality_file(path: str, service: Generation) -> FileResponse:
    """A file a zoo processor wrote in its folders under ``[personalities] data_folder``
    (the URLs of ``discussion_path_to_url`` and of the images it paints)."""
    real = _contained_file(service.data_folder(), path)
    if real is None:
        raise NotFound(f"No personality file '{path}'.", param="path")
    media_type = mimetypes.guess_type(real.name)[0] or "application/octet-stream"
    inline = media_type.startswith(_INLINE)
    return FileResponse(
        real,
        media_type=media_type if inline else "application/octet-stream",
        filename=None if inline else real.name,
        headers={
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _contained_file(root: Path, path: str) -> Path | None:
    """``root/path`` resolved, when it is a file inside ``root`` (links followed)."""
    if "\0" in path:
        return None
    try:
        real = (root / path).resolve(strict=True)
        inside_root = real.is_relative_to(root.resolve())
    except (OSError, RuntimeError, ValueError):
        return None
    return real if inside_root and real.is_file() else None


@router.get("/personalities/{name:path}")
async def get_personality(name: str, service: Generation) -> dict[str, Any]:
    """One personality in full: by id (``category/name``), folder name or display name;
    ``needs``: what it needs installed (``lollms-server personalities deps``)."""
    personality = service.personalities.get(name)
    await asyncio.to_thread(refresh)
    found = await asyncio.to_thread(needs, personality)
    return {
        **personality.details(),
        "missing_packages": sorted({n.name for n in found if not n.installed and not n.optional}),
        "needs": [
            {
                "name": n.name,
                "kind": n.kind,
                "source": n.source,
                "optional": n.optional,
                "installed": n.installed,
            }
            for n in found
        ],
    }


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
