"""``lollms.paths``: lollms' personal folders, all inside the personality's working folder
(``<data_folder>/<personality id>/``) so that a personality sees only its own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["LollmsPaths"]

_PERSONAL = {
    "personal_configuration_path": "configs",
    "personal_data_path": "data",
    "personal_databases_path": "databases",
    "personal_discussions_path": "discussions",
    "personal_models_path": "models",
    "personal_uploads_path": "uploads",
    "personal_log_path": "logs",
    "personal_certificates": "certs",
    "personal_memory_path": "memory",
    "personal_skills_path": "skills",
    "personal_trainers_path": "trainers",
    "personal_user_infos_path": "user_infos",
    "personal_outputs_path": "outputs",
    "personal_tools_path": "tools",
    "custom_personalities_path": "custom_personalities",
}


class LollmsPaths:
    """Folders a processor may write to; each is created when first read."""

    def __init__(self, home: Path, outputs: Path | None = None) -> None:
        self.personal_path = home
        self._outputs = outputs or home / "outputs"

    def __getattr__(self, name: str) -> Any:
        if name == "personal_outputs_path":
            path: Path = self.__dict__["_outputs"]
        elif name in _PERSONAL:
            path = self.__dict__["personal_path"] / _PERSONAL[name]
        else:
            if name.startswith("__"):
                raise AttributeError(name)
            raise AttributeError(f"lollms_server's LollmsPaths has no '{name}'")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def __str__(self) -> str:
        return f"LollmsPaths({self.personal_path})"


__getattr__ = missing_name(__name__)
