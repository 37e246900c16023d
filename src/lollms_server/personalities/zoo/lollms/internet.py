"""``lollms.internet``: lollms searches and scrapes the web by driving a browser (selenium);
a server does not. Every public name imports, so a processor that only sometimes searches
runs, and calling one raises NotImplementedError naming it."""

from __future__ import annotations

from functools import partial
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__: list[str] = []


def _not_here(name: str, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        f"lollms.internet.{name} is not available on this server (lollms_server does not "
        "drive a web browser for personalities)"
    )


def __getattr__(name: str) -> Any:
    if name.startswith("_"):
        return missing_name(__name__)(name)
    return partial(_not_here, name)
