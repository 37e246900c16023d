"""Discover personalities in the configured folders and find them by name."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from lollms_server.errors import AmbiguousName, BadRequest, NotFound
from lollms_server.personalities.loader import (
    PersonalityLoadError,
    is_personality_folder,
    load_personality,
    load_translation,
)
from lollms_server.personalities.model import Personality, PersonalityProblem
from lollms_server.security.paths import inside

__all__ = ["ISO_LANGUAGES", "PersonalityNotFound", "PersonalityRegistry"]

logger = logging.getLogger("lollms_server.personalities")

_SKIP = {"__pycache__", "node_modules", "languages", "assets", "scripts"}
_MAX_DEPTH = 8
# ISO 639-1 codes for the language names the zoo's translation files use.
ISO_LANGUAGES = {
    "ar": "arabic",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fr": "french",
    "hi": "hindi",
    "it": "italian",
    "ja": "japanese",
    "ko": "korean",
    "nl": "dutch",
    "pl": "polish",
    "pt": "portuguese",
    "ru": "russian",
    "tr": "turkish",
    "uk": "ukrainian",
    "zh": "chinese",
}


class PersonalityNotFound(NotFound):
    error_type = "personality_not_found"


class PersonalityRegistry:
    """Every personality found below the configured roots, and the folders that failed."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = [Path(r) for r in roots]
        self._items: dict[str, Personality] = {}
        self.problems: list[PersonalityProblem] = []

    @classmethod
    def discover(cls, roots: Iterable[Path]) -> PersonalityRegistry:
        registry = cls(roots)
        registry.reload()
        return registry

    def reload(self) -> None:
        items: dict[str, Personality] = {}
        problems: list[PersonalityProblem] = []
        for root in self.roots:
            if not root.is_dir():
                logger.info("personalities folder %s does not exist; none loaded from it", root)
                continue
            for folder in _personality_folders(root):
                self._load_one(folder, root, items, problems)
        self._items, self.problems = items, problems
        logger.info("%d personalities loaded, %d folders skipped", len(items), len(problems))

    def _load_one(
        self,
        folder: Path,
        root: Path,
        items: dict[str, Personality],
        problems: list[PersonalityProblem],
    ) -> None:
        try:
            if not inside(folder, root):
                raise PersonalityLoadError("links outside the configured folder")
            personality = load_personality(folder, root)
        except Exception as exc:  # any bad folder is skipped, never fatal
            reason = (
                str(exc)
                if isinstance(exc, PersonalityLoadError)
                else f"{type(exc).__name__}: {exc}"
            )
            logger.warning("skipped personality folder %s: %s", folder, reason)
            problems.append(PersonalityProblem(path=str(folder), reason=reason))
            return
        key = personality.id
        if key in items:  # the same relative path under two roots: qualify by root
            key = f"{root.name}/{key}"
            number = 2
            while key in items:  # roots with the same name too: number them
                key = f"{root.name}{number}/{personality.id}"
                number += 1
            personality = personality.model_copy(update={"id": key})
        for warning in personality.warnings:
            logger.warning("personality %s: %s", key, warning)
        items[key] = personality

    def all(self) -> list[Personality]:
        return sorted(self._items.values(), key=lambda p: p.id.lower())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: str) -> Personality:
        """By id (``category/name``, or a longer path), folder name or display name.

        Case-insensitive; several matches are a 409 listing their ids.
        """
        if name in self._items:
            return self._items[name]
        wanted = name.strip().strip("/").lower()
        matches = [p for p in self._items.values() if wanted in _names(p)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousName(
                f"Personality '{name}' matches several; use one of: "
                f"{', '.join(sorted(p.id for p in matches))}.",
                param="personality",
            )
        import difflib

        forms = {form: p.id for p in self._items.values() for form in _names(p)}
        close = difflib.get_close_matches(wanted, list(forms), n=3)
        ids = list(dict.fromkeys(forms[c] for c in close))
        hint = f" Did you mean: {', '.join(ids)}?" if ids else ""
        raise PersonalityNotFound(
            f"Personality '{name}' not found ({len(self._items)} loaded; "
            f"GET /api/v1/list_personalities lists them).{hint}",
            param="personality",
        )

    def localized(self, personality: Personality, language: str | None) -> Personality:
        """``personality`` in ``language`` (a translation file's name, its ISO code, or the
        personality's own language); 400 naming those it has."""
        if not language:
            return personality
        asked = language.strip().lower()
        wanted = ISO_LANGUAGES.get(asked, asked)
        own = (personality.language or "").lower()
        if wanted in (own, ISO_LANGUAGES.get(own, own)):
            return personality
        for name in personality.translations:  # files named "french.yaml" or "fr.yaml"
            if name.lower() in (asked, wanted) or ISO_LANGUAGES.get(name.lower()) == wanted:
                try:
                    return load_translation(personality, name)
                except Exception as exc:
                    raise BadRequest(
                        f"Translation '{name}' of personality '{personality.id}' is invalid: {exc}",
                        param="language",
                    ) from None
        available = ", ".join(personality.languages) or "none"
        raise BadRequest(
            f"Personality '{personality.id}' has no '{language}' translation; "
            f"languages: {available}.",
            param="language",
        )


def _names(p: Personality) -> set[str]:
    parts = p.id.lower().split("/")
    tails = {"/".join(parts[i:]) for i in range(len(parts))}
    return tails | {p.name.lower(), p.name.lower().rstrip("."), f"{p.category}/{p.name}".lower()}


def _personality_folders(root: Path) -> Iterable[Path]:
    """Folders holding a personality file, below ``root`` (not inside another one)."""
    for current, dirs, _files in os.walk(root, followlinks=False):
        folder = Path(current)
        depth = len(folder.relative_to(root).parts)
        if is_personality_folder(folder):  # the root itself may be one personality
            dirs[:] = []
            yield folder
            continue
        if depth >= _MAX_DEPTH:
            dirs[:] = []
        dirs[:] = sorted(d for d in dirs if d not in _SKIP and not d.startswith("."))
