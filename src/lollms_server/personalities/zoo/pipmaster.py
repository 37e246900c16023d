"""``pipmaster`` as zoo processors see it: every check answers, every install is refused.

``import pipmaster as pm`` in a processor gives this module. Queries (``is_installed``,
``get_installed_version``...) look at the server's environment; installs, updates and
removals change nothing and return ``False`` after :func:`~.sandbox.refuse_install` (logged,
and shown to the client); the ``*_if_missing`` and ``ensure_*`` forms return ``True`` when
everything is already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lollms_server.personalities.packages import (
    installed_version,
    requirement_met,
    split_requirement,
)
from lollms_server.personalities.zoo.sandbox import refuse_install

__all__ = [
    "PackageManager",
    "ensure_packages",
    "ensure_requirements",
    "get_installed_version",
    "get_package_info",
    "get_pip_manager",
    "install",
    "install_edit",
    "install_if_missing",
    "install_multiple",
    "install_multiple_if_not_installed",
    "install_or_update",
    "install_or_update_multiple",
    "install_requirements",
    "install_version",
    "is_installed",
    "is_version_compatible",
    "is_version_exact",
    "is_version_higher",
    "uninstall",
    "uninstall_multiple",
]


def _refused(packages: Iterable[str], call: str) -> bool:
    refuse_install(list(packages), f"pipmaster.{call}")
    return False


def _ensured(requirements: Iterable[str], call: str) -> bool:
    missing = [r for r in requirements if not requirement_met(r)]
    return _refused(missing, call) if missing else True


def _requirement_list(requirements: str | Iterable[str] | Mapping[str, Any]) -> list[str]:
    if isinstance(requirements, str):
        return [requirements]
    if isinstance(requirements, Mapping):
        return [f"{name}{spec or ''}" for name, spec in requirements.items()]
    return [str(r) for r in requirements]


class PackageManager:
    """pipmaster's manager, for the server's own environment only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or any(kwargs.get(k) for k in ("python_executable", "venv_path")):
            self._refuse_other_environment()

    @staticmethod
    def _refuse_other_environment() -> None:
        refuse_install(["(another Python environment)"], "pipmaster.PackageManager")

    # -- queries ---------------------------------------------------------------------------
    def is_installed(self, package_name: str, version_specifier: str | None = None) -> bool:
        """Whether the distribution is installed (and meets ``version_specifier``)."""
        return requirement_met(package_name, version_specifier)

    def get_installed_version(self, package_name: str) -> str | None:
        """Its installed version, or None."""
        return installed_version(package_name)

    def is_version_compatible(self, package_name: str, version_specifier: str) -> bool:
        """Whether the installed version meets ``version_specifier``."""
        return requirement_met(package_name, version_specifier)

    def get_package_info(self, package_name: str) -> str | None:
        """``pip show``-like text from the distribution's metadata, or None."""
        import importlib.metadata

        try:
            meta = importlib.metadata.metadata(split_requirement(package_name)[0])
        except importlib.metadata.PackageNotFoundError:
            return None
        fields = ("Name", "Version", "Summary", "Home-page", "Author", "License")
        return "\n".join(f"{f}: {meta[f] or ''}" for f in fields if f in meta)

    # -- installs: refused -----------------------------------------------------------------
    def install(self, package: str, *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused([package], "install")

    def install_version(self, package: str, version: str, *args: Any, **kwargs: Any) -> bool:
        """Refused unless that version is installed."""
        return _ensured([f"{package}=={version}"], "install_version")

    def install_edit(self, path: str, *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused([str(path)], "install_edit")

    def install_requirements(self, requirements_file: str, *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused([Path(requirements_file).name], "install_requirements")

    def install_multiple(self, packages: list[str], *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused(packages, "install_multiple")

    def install_or_update(self, package: str, *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused([package], "install_or_update")

    def install_or_update_multiple(self, packages: list[str], *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused(packages, "install_or_update_multiple")

    def uninstall(self, package: str, *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused([package], "uninstall")

    def uninstall_multiple(self, packages: list[str], *args: Any, **kwargs: Any) -> bool:
        """Refused."""
        return _refused(packages, "uninstall_multiple")

    def install_if_missing(
        self,
        package: str,
        version: str | None = None,
        enforce_version: bool = False,
        always_update: bool = False,
        *args: Any,
        version_specifier: str | None = None,
        **kwargs: Any,
    ) -> bool:
        """True when installed as asked; the install is refused otherwise."""
        specifier = version_specifier or (
            f"=={version}" if version and enforce_version else f">={version}" if version else ""
        )
        if always_update:
            return _refused([package], "install_if_missing(always_update=True)")
        return _ensured([f"{package}{specifier}"], "install_if_missing")

    def install_multiple_if_not_installed(
        self, packages: list[str], *args: Any, **kwargs: Any
    ) -> bool:
        """True when all are installed; the install of the others is refused otherwise."""
        return _ensured(packages, "install_multiple_if_not_installed")

    def ensure_packages(
        self, requirements: str | list[str] | dict[str, Any], *args: Any, **kwargs: Any
    ) -> bool:
        """True when every requirement is met; the install is refused otherwise."""
        return _ensured(_requirement_list(requirements), "ensure_packages")

    def ensure_requirements(self, requirements_file: str, *args: Any, **kwargs: Any) -> bool:
        """True when every line of the requirements file is met (read, never installed)."""
        lines = Path(requirements_file).read_text(encoding="utf-8").splitlines()
        wanted = [line.strip() for line in lines if line.strip() and line[0] not in "#-"]
        return _ensured(wanted, "ensure_requirements")

    # -- deprecated pipmaster names ----------------------------------------------------------
    def is_version_higher(self, package_name: str, required_version: str) -> bool:
        """Whether the installed version is at least ``required_version``."""
        return requirement_met(package_name, f">={required_version}")

    def is_version_exact(self, package_name: str, required_version: str) -> bool:
        """Whether the installed version is ``required_version``."""
        return requirement_met(package_name, f"=={required_version}")


_manager = PackageManager()


def get_pip_manager(*args: Any, **kwargs: Any) -> PackageManager:
    """A manager (for the server's environment only)."""
    return PackageManager(*args, **kwargs)


is_installed = _manager.is_installed
get_installed_version = _manager.get_installed_version
is_version_compatible = _manager.is_version_compatible
get_package_info = _manager.get_package_info
install = _manager.install
install_version = _manager.install_version
install_edit = _manager.install_edit
install_requirements = _manager.install_requirements
install_multiple = _manager.install_multiple
install_or_update = _manager.install_or_update
install_or_update_multiple = _manager.install_or_update_multiple
uninstall = _manager.uninstall
uninstall_multiple = _manager.uninstall_multiple
install_if_missing = _manager.install_if_missing
install_multiple_if_not_installed = _manager.install_multiple_if_not_installed
ensure_packages = _manager.ensure_packages
ensure_requirements = _manager.ensure_requirements
is_version_higher = _manager.is_version_higher
is_version_exact = _manager.is_version_exact


def __getattr__(name: str) -> Any:
    raise AttributeError(
        f"'pipmaster.{name}' is not provided by lollms_server's zoo compatibility layer"
    )
