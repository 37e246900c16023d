"""``lollms.paths``: lollms' personal folders, all inside the personality's working folder
(``<data_folder>/<personality id>/``) so that a personality sees only its own files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["LollmsPaths", "zoo_categories"]

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
    """Folders a processor may write to; each is created when first read.

    ``personalities_zoo_path`` is a folder of the working folder too: it holds one empty
    folder per category of the zoo the personality comes from (``categories``; the makers of
    new personalities offer them to the model) and ``personal``, where they write theirs."""

    def __init__(
        self, home: Path, outputs: Path | None = None, categories: tuple[str, ...] = ()
    ) -> None:
        self.personal_path = home
        self._outputs = outputs or home / "outputs"
        self._categories = categories

    def __getattr__(self, name: str) -> Any:
        if name == "personalities_zoo_path":
            path: Path = self.__dict__["personal_path"] / "personalities_zoo"
            for category in (*self.__dict__["_categories"], "personal"):
                (path / category).mkdir(parents=True, exist_ok=True)
        elif name == "personal_outputs_path":
            path = self.__dict__["_outputs"]
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


def zoo_categories(folder: Path, personality_id: str) -> tuple[str, ...]:
    """The categories of the zoo a personality is in (``<root>/<category>/<name>``): the
    folders beside its category's folder, read only when that one is inside the configured
    root (an id of two parts or more)."""
    if len(Path(personality_id).parts) < 2:
        return ()
    try:
        found = [d.name for d in folder.parent.parent.iterdir() if d.is_dir()]
    except OSError:
        return ()
    return tuple(sorted(name for name in found if not name.startswith((".", "_"))))


__getattr__ = missing_name(__name__)
