"""Containment of user folders: code and data load only from the folders the config names."""

from __future__ import annotations

from pathlib import Path

__all__ = ["inside"]


def inside(path: Path, folder: Path) -> bool:
    """Whether ``path``, symbolic links followed, stays inside ``folder``."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a symlink loop
        return False
