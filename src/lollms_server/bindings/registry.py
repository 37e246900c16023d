"""Discovery of binding types: installed entry points and the configured bindings folder.

Entry points (group ``lollms_server.bindings``) are only *listed* at start-up; a binding's
module is imported the first time its class is needed, so heavy engines stay unimported until
used. Folder plugins are imported from the configured folder only: each ``*.py`` file or
package directory there may define ``Binding`` subclasses. A plugin that fails to import is
recorded with its error and never stops the server.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from lollms_server.bindings.base import Binding, BindingConfig
from lollms_server.plugins import import_file
from lollms_server.security.paths import inside

__all__ = ["ENTRY_POINT_GROUP", "BindingRegistry", "BindingSource"]

ENTRY_POINT_GROUP = "lollms_server.bindings"
PLUGIN_NAMESPACE = "lollms_server_plugins"
logger = logging.getLogger(__name__)


@dataclass
class BindingSource:
    """Where a binding type comes from, and what happened when it was imported."""

    name: str
    origin: str
    target: str | None = None  # "module:Class" for entry points
    cls: type[Binding] | None = None
    error: str | None = None
    _tried: bool = field(default=False, repr=False)


class BindingRegistry:
    def __init__(self) -> None:
        self._sources: dict[str, BindingSource] = {}
        self._folder_errors: list[BindingSource] = []
        self.conflicts: list[str] = []  # a binding type declared twice: which one won

    # -- discovery -------------------------------------------------------------------------
    def discover_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "?"
            origin = f"entry point ({dist})"
            if ep.name in self._sources:
                self._conflict(ep.name, self._sources[ep.name].origin, origin)
                continue
            self._sources[ep.name] = BindingSource(ep.name, origin, ep.value)

    def _conflict(self, name: str, kept: str, other: str) -> None:
        message = f"binding type '{name}' is declared by {kept} and by {other}: {kept} is used"
        logger.warning("%s", message[0].upper() + message[1:])
        self.conflicts.append(message)

    def discover_folder(self, folder: Path) -> None:
        """Import every module or package in ``folder`` and register its Binding subclasses."""
        if not folder.is_dir():
            return
        for path in sorted(folder.iterdir()):
            if path.name.startswith(("_", ".")):
                continue
            if path.is_dir() and (path / "__init__.py").is_file():
                module_file = path / "__init__.py"
            elif path.suffix == ".py" and path.is_file():
                module_file = path
            else:
                continue
            if not inside(module_file, folder):
                message = "links outside the configured bindings folder: not loaded"
                logger.error("Binding plugin %s %s", path, message)
                self._folder_errors.append(
                    BindingSource(path.stem, f"folder ({path})", error=message, _tried=True)
                )
                continue
            self._load_plugin_module(path.stem if path.is_file() else path.name, module_file)

    def register(self, cls: type[Binding], origin: str = "code") -> None:
        self._sources[cls.name] = BindingSource(cls.name, origin, cls=cls, _tried=True)

    def _load_plugin_module(self, stem: str, module_file: Path) -> None:
        module_name = f"{PLUGIN_NAMESPACE}.{stem}"
        origin = f"folder ({module_file.parent if stem != module_file.stem else module_file})"
        try:
            module = import_file(module_name, module_file)
        except (Exception, SystemExit) as exc:  # a broken plugin must never stop the server
            message = f"{type(exc).__name__}: {exc}"
            logger.error("Binding plugin %s failed to import: %s", module_file, message)
            self._folder_errors.append(BindingSource(stem, origin, error=message, _tried=True))
            return
        found = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, Binding)
            and obj is not Binding
            # its own classes, or a package's from its submodules (re-exported)
            and (
                obj.__module__ == module.__name__
                or obj.__module__.startswith(module.__name__ + ".")
            )
            and not inspect.isabstract(obj)
        ]
        if not found:
            message = "defines no concrete Binding subclass"
            logger.warning("Binding plugin %s %s", module_file, message)
            self._folder_errors.append(BindingSource(stem, origin, error=message, _tried=True))
        for cls in found:
            name = getattr(cls, "name", None)
            if not isinstance(name, str) or not name:
                self._folder_errors.append(
                    BindingSource(cls.__name__, origin, error="class has no 'name'", _tried=True)
                )
                continue
            if not (inspect.isclass(cls.Config) and issubclass(cls.Config, BindingConfig)):
                self._folder_errors.append(
                    BindingSource(
                        name,
                        origin,
                        error="its Config is not a BindingConfig subclass",
                        _tried=True,
                    )
                )
                continue
            if name in self._sources:  # the folder's plugin wins: the user put it there
                self._conflict(name, origin, self._sources[name].origin)
            self._sources[name] = BindingSource(name, origin, cls=cls, _tried=True)

    # -- lookup ----------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._sources)

    def get(self, name: str) -> BindingSource | None:
        """The source of binding type ``name``, importing its class on first use."""
        source = self._sources.get(name)
        if source is None:
            return None
        if not source._tried:
            source._tried = True
            try:
                source.cls = _load_target(source.target or "")
            except Exception as exc:
                source.error = f"{type(exc).__name__}: {exc}"
                logger.error(
                    "Binding '%s' (%s) failed to import: %s", name, source.origin, source.error
                )
        return source

    def failed_plugin(self, name: str) -> BindingSource | None:
        """The folder plugin that failed and may have declared binding type ``name``."""
        return next((s for s in self._folder_errors if s.name == name), None)

    def all(self) -> list[BindingSource]:
        """Every known binding type, each imported, plus plugins that failed."""
        found = [s for s in (self.get(n) for n in self.names()) if s is not None]
        return found + list(self._folder_errors)


def _load_target(target: str) -> type[Binding]:
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not (inspect.isclass(obj) and issubclass(obj, Binding)):
        raise TypeError(f"{target} is not a Binding subclass")
    return obj
