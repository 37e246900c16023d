"""Clear errors for lollms names the compatibility layer does not provide."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

__all__ = ["missing_name", "public_name"]

_SHIM = "lollms_server.personalities.zoo.lollms"


def public_name(module: str) -> str:
    """``lollms_server.personalities.zoo.lollms.utilities`` -> ``lollms.utilities``."""
    return "lollms" + module[len(_SHIM) :] if module.startswith(_SHIM) else module


def missing_name(module: str) -> Callable[[str], NoReturn]:
    """A module ``__getattr__`` whose AttributeError names ``lollms.<module>.<name>``."""

    def __getattr__(name: str) -> NoReturn:  # noqa: N807 - a module's __getattr__
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"'{public_name(module)}.{name}' is not provided by lollms_server's zoo "
            "compatibility layer"
        )

    return __getattr__
