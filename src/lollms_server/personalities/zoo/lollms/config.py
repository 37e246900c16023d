"""``lollms.config``: the typed settings a processor declares for itself.

Values are kept in memory for the request; ``save_config``/``load_config`` keep nothing on
disk (a server has no per-user personality settings folder), and a request's
``personality_config`` sets them.
"""

from __future__ import annotations

import ast
from enum import Enum
from pathlib import Path
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name
from lollms_server.personalities.zoo.lollms.helpers import ASCIIColors

__all__ = ["ASCIIColors", "BaseConfig", "ConfigTemplate", "InstallOption", "TypedConfig"]


class InstallOption(Enum):
    NEVER_INSTALL = 1
    INSTALL_IF_NECESSARY = 2
    FORCE_INSTALL = 3


class ConfigTemplate:
    """A list of entries ``{"name", "type", "value", "help", "options", "min", "max"}``."""

    def __init__(self, template: list[dict[str, Any]] | None = None) -> None:
        self.template: list[dict[str, Any]] = []
        for entry in template or []:
            self._check(entry)
            self.template.append(entry)

    @staticmethod
    def _check(entry: dict[str, Any]) -> None:
        missing = [k for k in ("name", "value", "type") if k not in entry]
        if missing:
            raise ValueError(f"config template entry lacks {', '.join(missing)}: {entry}")

    def add_entry(
        self,
        entry_name: str,
        entry_value: Any,
        entry_type: str,
        entry_min: Any = None,
        entry_max: Any = None,
        entry_help: str = "",
    ) -> None:
        self.template.append(
            {
                "name": entry_name,
                "value": entry_value,
                "type": entry_type,
                "min": entry_min,
                "max": entry_max,
                "help": entry_help,
            }
        )

    def __getitem__(self, key: str) -> dict[str, Any] | None:
        return next((e for e in self.template if e["name"] == key), None)

    def __iter__(self) -> Any:
        return iter(self.template)

    def __len__(self) -> int:
        return len(self.template)


class BaseConfig:
    def __init__(
        self,
        exceptional_keys: list[str] | None = None,
        config: dict[str, Any] | None = None,
        file_path: Path | str | None = None,
    ) -> None:
        self.exceptional_keys = exceptional_keys or []
        self.config: dict[str, Any] = dict(config or {})
        self.file_path = Path(file_path) if file_path else None

    @staticmethod
    def from_template(
        template: ConfigTemplate,
        exceptional_keys: list[str] | None = None,
        file_path: Path | str | None = None,
    ) -> BaseConfig:
        values = {entry["name"]: entry["value"] for entry in template.template}
        return BaseConfig(exceptional_keys, values, file_path)

    def __getitem__(self, key: str) -> Any:
        return self.config[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.config[key] = value

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("config", "exceptional_keys", "file_path"):
            raise AttributeError(key)
        try:
            return self.__dict__["config"][key]
        except KeyError:
            raise AttributeError(f"config has no '{key}'") from None

    def __contains__(self, key: str) -> bool:
        return key in self.config

    def get(self, key: str, default: Any = None) -> Any:
        return self.config.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.config)

    def copy(self) -> BaseConfig:
        return BaseConfig(list(self.exceptional_keys), dict(self.config), self.file_path)

    def load_config(self, file_path: Path | str | None = None) -> None:
        """Nothing is stored between requests: the values stay as they are."""

    def save_config(self, file_path: Path | str | None = None) -> None:
        """Nothing is stored between requests (see the module docstring)."""


def _convert(entry: dict[str, Any], value: Any) -> Any:
    kind = entry.get("type")
    if kind in ("int", "float"):
        number = int(value) if kind == "int" else float(value)
        if entry.get("min") is not None:
            number = max(number, entry["min"])
        if entry.get("max") is not None:
            number = min(number, entry["max"])
        return number
    if kind in ("str", "text", "string", "btn", "file", "folder"):
        return "" if value is None else str(value)
    if kind == "bool":
        return (
            value.lower() in ("1", "true", "yes", "on") if isinstance(value, str) else bool(value)
        )
    if kind in ("list", "dict"):
        return ast.literal_eval(value) if isinstance(value, str) else value
    return value


class TypedConfig:
    """Settings read as attributes or items, converted to their template's types."""

    def __init__(self, config_template: ConfigTemplate, config: BaseConfig | None = None) -> None:
        self.config_template = config_template
        self.config = config if config is not None else BaseConfig(config={})
        self.sync()

    def sync(self) -> None:
        for entry in self.config_template.template:
            name = entry["name"]
            value = self.config.config.get(name, entry["value"])
            self.config.config[name] = _convert(entry, value)

    def update(self, values: dict[str, Any]) -> None:
        """Set values (a request's ``personality_config``); unknown names are an error."""
        known = {e["name"] for e in self.config_template.template}
        unknown = sorted(set(values) - known)
        if unknown:
            raise KeyError(
                f"unknown setting(s) {', '.join(unknown)}; this personality has: "
                f"{', '.join(sorted(known)) or 'none'}"
            )
        self.config.config.update(values)
        self.sync()

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key in ("config", "config_template"):
            raise AttributeError(key)
        try:
            return self.__dict__["config"].config[key]
        except KeyError:
            raise AttributeError(f"personality config has no '{key}'") from None

    def __getitem__(self, key: str) -> Any:
        return self.config.config[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.config.config[key] = value
        self.sync()

    def get(self, key: str, default_value: Any = None) -> Any:
        return self.config.config.get(key, default_value)

    def to_dict(self, use_template: bool = False) -> dict[str, Any]:
        return dict(self.config.config)

    def save(self, file_path: Path | str | None = None) -> None:
        """Nothing is stored between requests."""


__getattr__ = missing_name(__name__)
