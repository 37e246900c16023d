"""``lollms.client_session``: the client a processor works for (one per request here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.types import SENDER_TYPES

__all__ = ["Client", "Discussion", "DiscussionMessage"]


class DiscussionMessage:
    """One message of the conversation, as lollms' discussion database gives it."""

    def __init__(self, message_id: int, sender: str, content: str, sender_type: Any) -> None:
        self.id = message_id
        self.sender = sender
        self.content = content
        self.sender_type = sender_type

    def __repr__(self) -> str:
        return f"DiscussionMessage({self.id}, {self.sender!r}, {self.content[:20]!r})"


_METADATA = "metadata.json"


class Discussion:
    """The conversation: its folder (``discussions/<request>`` in the personality's working
    folder, its files served) and its messages. Subfolders are created when first read."""

    _FOLDERS = {
        "discussion_images_folder": "images",
        "discussion_audio_folder": "audio",
        "discussion_text_folder": "text_data",
        "discussion_skills_folder": "skills",
        "discussion_rag_folder": "rag",
        "discussion_view_images_folder": "view_images",
    }

    def __init__(
        self,
        folder: Path,
        image_files: list[Path] | None = None,
        messages: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.discussion_folder = folder
        self.discussion_id = folder.name
        self.image_files: list[Path] = image_files or []
        self.text_files: list[Path] = []
        self.audio_files: list[Path] = []
        self.messages = [
            DiscussionMessage(i, sender, content, _sender_type(sender))
            for i, (sender, content) in enumerate(messages)
        ]
        self.current_message: DiscussionMessage | None = self.messages[-1] if messages else None

    def __getattr__(self, name: str) -> Any:
        if name in Discussion._FOLDERS:
            path = self.__dict__["discussion_folder"] / Discussion._FOLDERS[name]
            path.mkdir(parents=True, exist_ok=True)
            return path
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"lollms_server's Discussion has no '{name}'")

    def get_metadata(self) -> dict[str, Any]:
        """What the processor stored with :meth:`set_metadata` ({} at first)."""
        path = self.discussion_folder / _METADATA
        if not path.is_file():
            return {}
        value = json.loads(path.read_text(encoding="utf-8"))
        return value if isinstance(value, dict) else {}

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        """Keep ``metadata`` (JSON) with the discussion, in its folder."""
        self.discussion_folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(metadata, default=str)
        (self.discussion_folder / _METADATA).write_text(text, encoding="utf-8")

    def get_messages(self) -> list[DiscussionMessage]:
        """The conversation, oldest first."""
        return list(self.messages)

    def get_message(self, message_id: int) -> DiscussionMessage | None:
        """One message by its id (its position), or None."""
        return next((m for m in self.messages if m.id == message_id), None)


def _sender_type(role: str) -> SENDER_TYPES:
    if role == "user":
        return SENDER_TYPES.SENDER_TYPES_USER
    if role == "system":
        return SENDER_TYPES.SENDER_TYPES_SYSTEM
    return SENDER_TYPES.SENDER_TYPES_AI


class Client:
    """The client of one request (``client.discussion``, ``client.client_id``)."""

    def __init__(self, client_id: str, discussion: Discussion) -> None:
        self.client_id = client_id
        self.discussion = discussion
        self.generated_text = ""
        self.cancel_generation = False
        self.processing = False

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"lollms_server's Client has no '{name}'")


__getattr__ = missing_name(__name__)
