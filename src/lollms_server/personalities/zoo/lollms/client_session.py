"""``lollms.client_session``: the client a processor works for (one per request here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Client", "Discussion"]


class Discussion:
    """The conversation's folder and files (a per-request temporary folder)."""

    def __init__(self, folder: Path, image_files: list[Path] | None = None) -> None:
        self.discussion_folder = folder
        self.image_files: list[Path] = image_files or []
        self.text_files: list[Path] = []
        self.audio_files: list[Path] = []


class Client:
    def __init__(self, client_id: str, discussion: Discussion) -> None:
        self.client_id = client_id
        self.discussion = discussion
        self.generated_text = ""
        self.cancel_generation = False
        self.processing = False

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"lollms_server's Client has no '{name}'")
