"""Read one personality folder: the classic ``config.yaml`` or the current ``SOUL.md``.

The zoo's files are hand-written and vary: missing author or version, ``category`` or
``personality_conditioning`` as lists, ``link_text`` holding a literal backslash-n, unknown
keys. The reader accepts all of that and keeps unknown keys in ``Personality.raw``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from lollms_server.personalities.model import Personality, Sampling, ScriptInfo
from lollms_server.security.paths import inside

__all__ = [
    "PersonalityLoadError",
    "is_personality_folder",
    "load_personality",
    "load_translation",
]

CONFIG_FILE = "config.yaml"
SOUL_FILE = "SOUL.md"
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_LOGOS = ("logo.png", "logo.jpg", "logo.jpeg", "logo.gif", "logo.webp", "logo.svg")
_SAMPLING_KEYS = {
    "temperature": ("model_temperature", "temperature"),
    "top_k": ("model_top_k", "top_k"),
    "top_p": ("model_top_p", "top_p"),
    "repeat_penalty": ("model_repeat_penalty", "repeat_penalty"),
    "repeat_last_n": ("model_repeat_last_n", "repeat_last_n"),
    "max_tokens": ("model_n_predicts", "max_tokens"),
}


class PersonalityLoadError(Exception):
    """The folder is not a valid personality; ``str()`` says why."""


def is_personality_folder(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() or (folder / SOUL_FILE).is_file()


def _yaml_mapping(text: str, what: str) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped]  # lazily: only when personalities exist

    class NoAliasLoader(yaml.SafeLoader):  # type: ignore[misc]
        """SafeLoader without aliases: a few lines of nested aliases expand to gigabytes."""

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.get_event()
                raise yaml.composer.ComposerError(
                    None, None, "YAML aliases (*name) are not accepted", event.start_mark
                )
            return super().compose_node(parent, index)

    try:
        data = yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PersonalityLoadError(f"{what}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PersonalityLoadError(f"{what}: expected a mapping of keys, got {type(data).__name__}")
    _check_values(data, what)
    return {str(k): v for k, v in data.items()}


def _check_values(value: Any, what: str) -> None:
    """Only values that can be served as JSON (!!binary would make a 500 later)."""
    if isinstance(value, bytes | bytearray):
        raise PersonalityLoadError(f"{what}: binary (!!binary) values are not accepted")
    if isinstance(value, dict):
        for item in value.values():
            _check_values(item, what)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _check_values(item, what)


MAX_FILE_BYTES = 1 << 20  # a personality's text files; the zoo's largest is ~20 KB


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PersonalityLoadError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PersonalityLoadError(f"{path.name}: not UTF-8 text") from None
    except OSError as exc:
        raise PersonalityLoadError(f"{path.name}: cannot be read ({exc.strerror})") from None


def _read_soul(path: Path) -> tuple[dict[str, Any], str]:
    """Front matter keys and the Markdown body (the personality's instructions)."""
    text = _read(path)
    match = _FRONT_MATTER.match(text)
    if match is None:
        return {}, text.strip()
    return _yaml_mapping(match.group(1), f"{SOUL_FILE} front matter"), text[match.end() :].strip()


def _prefix(value: Any) -> str:
    """A message prefix as the name alone: some zoo files write the whole lollms header
    (``"!@>User:"``), which the prompt builder adds itself."""
    text = _text(value).strip()
    return text.removeprefix("!@>").strip().removesuffix(":").strip()


def _text(value: Any) -> str:
    """Text from a YAML value: lists (conditioning as a list of lines) are joined."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    return str(value)


def _strings(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [str(value)]


def _unescape(value: str) -> str:
    """``link_text: '\\n'`` (single-quoted YAML) means a newline to lollms."""
    return value.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t")


def _sampling(raw: dict[str, Any], warnings: list[str]) -> Sampling:
    values: dict[str, Any] = {}
    for field, keys in _SAMPLING_KEYS.items():
        for key in keys:
            value = raw.get(key)
            if value is None or value == "":
                continue
            try:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError(value)
                values[field] = (
                    int(number) if field in ("top_k", "repeat_last_n", "max_tokens") else number
                )
            except (TypeError, ValueError, OverflowError):
                warnings.append(f"'{key}' is not a usable number ({value!r}); ignored")
            break
    return Sampling(**values)


def _script(raw: dict[str, Any], folder: Path, warnings: list[str]) -> ScriptInfo | None:
    named = raw.get("script")
    if named:
        path = folder / str(named)
        if not inside(path, folder) or path.suffix != ".py":
            warnings.append(
                f"script '{named}' must be a .py file inside the personality "
                "folder; loaded as a plain personality"
            )
            return ScriptInfo(
                kind="workflow",
                path=path,
                available=False,
                reason="script outside the personality folder",
            )
        path = path.resolve()
        if not path.is_file():
            warnings.append(f"script '{named}' is missing; loaded as a plain personality")
            return ScriptInfo(
                kind="workflow", path=path, available=False, reason=f"{named} not found"
            )
        return ScriptInfo(kind="workflow", path=path, available=True)
    processor = folder / "scripts" / "processor.py"
    if processor.is_file() and inside(processor, folder):
        return ScriptInfo(kind="zoo", path=processor, available=True)
    if processor.is_file():
        warnings.append(
            "scripts/processor.py links outside the personality folder; loaded "
            "as a plain personality"
        )
        return ScriptInfo(
            kind="zoo", path=processor, available=False, reason="outside the personality folder"
        )
    if (folder / "scripts").is_dir():
        warnings.append(
            "scripted personality whose scripts/processor.py is missing; loaded "
            "as a plain personality"
        )
        return ScriptInfo(
            kind="zoo", path=processor, available=False, reason="scripts/processor.py not found"
        )
    return None


def _logo(folder: Path) -> Path | None:
    for base in (folder / "assets", folder):
        for name in _LOGOS:
            if (base / name).is_file() and inside(base / name, folder):
                return base / name
    return None


def _translations(folder: Path) -> dict[str, Path]:
    languages = folder / "languages"
    if not languages.is_dir():
        return {}
    return {
        p.stem: p for p in sorted(languages.glob("*.yaml")) if p.is_file() and inside(p, folder)
    }


def _optional(value: Any) -> str | None:
    text = _text(value).strip()
    return text or None


def build(
    raw: dict[str, Any], *, body: str | None, folder: Path, root: Path, fmt: str
) -> Personality:
    """A Personality from a file's keys (``body``: SOUL.md's Markdown)."""
    warnings: list[str] = []
    categories = _strings(raw.get("category"))
    conditioning = body if body is not None else _text(raw.get("personality_conditioning"))
    if body is not None and not conditioning:
        conditioning = _text(raw.get("personality_conditioning") or raw.get("conditioning"))
    rel = folder.relative_to(root).as_posix() if folder != root else folder.name
    dependencies = _strings(raw.get("dependencies"))
    if dependencies:
        warnings.append(
            "needs packages that are not installed automatically: " + ", ".join(dependencies)
        )
    return Personality(
        id=rel,
        name=_text(raw.get("name")).strip() or folder.name,
        folder_name=folder.name,
        category=folder.parent.name if folder != root else "",
        categories=categories,
        format=fmt,
        author=_optional(raw.get("author")),
        version=_optional(raw.get("version")),
        description=_text(raw.get("personality_description") or raw.get("description")),
        conditioning=conditioning.strip("\n"),
        welcome_message=_text(raw.get("welcome_message")).strip(),
        disclaimer=_text(raw.get("disclaimer")).strip(),
        user_name=_optional(raw.get("user_name")),
        language=_optional(raw.get("language")),
        translations=_translations(folder),
        user_message_prefix=_prefix(raw.get("user_message_prefix")) or "user",
        ai_message_prefix=_prefix(raw.get("ai_message_prefix")) or "assistant",
        link_text=_unescape(_text(raw["link_text"])) if "link_text" in raw else "\n",
        anti_prompts=_strings(raw.get("anti_prompts")),
        dependencies=dependencies,
        recommended_binding=_optional(raw.get("recommended_binding")),
        recommended_model=_optional(raw.get("recommended_model")),
        sampling=_sampling(raw, warnings),
        prompts_list=_strings(raw.get("prompts_list")),
        help=_text(raw.get("help")),
        script=_script(raw, folder, warnings),
        logo=_logo(folder),
        folder=folder,
        warnings=warnings,
        raw=raw,
    )


def load_personality(folder: Path, root: Path) -> Personality:
    """Load ``folder`` (below the configured ``root``); ``PersonalityLoadError`` says why not."""
    for name in (CONFIG_FILE, SOUL_FILE):
        if (folder / name).exists() and not inside(folder / name, folder):
            raise PersonalityLoadError(f"{name} links outside the personality folder")
    if (folder / CONFIG_FILE).is_file():
        raw = _yaml_mapping(_read(folder / CONFIG_FILE), CONFIG_FILE)
        return build(raw, body=None, folder=folder, root=root, fmt=CONFIG_FILE)
    if (folder / SOUL_FILE).is_file():
        raw, body = _read_soul(folder / SOUL_FILE)
        return build(raw, body=body, folder=folder, root=root, fmt=SOUL_FILE)
    raise PersonalityLoadError(f"neither {CONFIG_FILE} nor {SOUL_FILE} found")


def load_translation(personality: Personality, language: str) -> Personality:
    """``personality`` with its ``languages/<language>.yaml`` keys laid over the original."""
    path = personality.translations[language]
    overlay = _yaml_mapping(_read(path), f"languages/{path.name}")
    raw = {**personality.raw, **overlay}
    body = personality.conditioning if personality.format == SOUL_FILE else None
    if body is not None and overlay.get("personality_conditioning"):
        body = _text(overlay["personality_conditioning"])
    root = personality.folder
    for _ in personality.id.split("/"):
        root = root.parent
    translated = build(raw, body=body, folder=personality.folder, root=root, fmt=personality.format)
    return translated.model_copy(
        update={"language": _optional(overlay.get("language")) or language}
    )
