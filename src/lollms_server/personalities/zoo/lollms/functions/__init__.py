"""``lollms.functions``: functions a processor offers the model (``function_definitions``).

Provided: ``generate_image`` (through the server's image binding), ``take_a_photo`` and
``select_image_file`` (a clear "not available on a server" result), ``calculator``,
``roll_a_dice``, ``prompting``'s image prompt helpers. Any other ``lollms.functions.<module>``
imports, and its ``<name>_function`` builders give a definition whose call answers that the
function is not available on this server (the model reads it; the rest of the processor
runs). Its other names import too, and raise NotImplementedError naming themselves when
called."""

from __future__ import annotations

import logging
from functools import partial
from types import ModuleType
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name, public_name

__all__ = ["UnavailableFunctions", "unavailable_functions"]

__getattr__ = missing_name(__name__)
logger = logging.getLogger("lollms_server.personalities.zoo")


def _not_available(name: str, module: str, *args: Any, **kwargs: Any) -> str:
    logger.info("a processor's model called %s, which %s does not provide", name, module)
    return (
        f"The function {name} ({module}) is not available on this server; answer without it "
        "or tell the user it cannot be done here."
    )


def _definition(name: str, module: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return {
        "function_name": name,
        "function": partial(_not_available, name, module),
        "function_description": f"{name}: not available on this server (do not call it).",
        "function_parameters": [],
    }


def _unavailable(name: str, module: str, *args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(f"{module}.{name} is not available on this server (lollms_server)")


class UnavailableFunctions(ModuleType):
    """A ``lollms.functions`` module lollms_server does not provide: its ``*_function``
    builders describe functions that answer "not available"; its other public names import
    (a processor that never calls them runs) and raise NotImplementedError, naming
    themselves, when called."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            return missing_name(self.__name__)(name)
        module = public_name(self.__name__)
        if name.endswith("_function"):
            return partial(_definition, name.removesuffix("_function"), module)
        return partial(_unavailable, name, module)


def unavailable_functions(name: str) -> UnavailableFunctions:
    """The stand-in module ``name`` (a module below this package), packages above it too,
    registered in ``sys.modules``."""
    import importlib
    import sys

    parent, _, leaf = name.rpartition(".")
    try:
        above: ModuleType = importlib.import_module(parent)
    except ModuleNotFoundError:
        above = unavailable_functions(parent)
    module = UnavailableFunctions(name, f"{public_name(name)}: not provided by lollms_server")
    module.__path__ = []  # a package: modules below it are stand-ins too
    sys.modules[name] = module
    above.__dict__[leaf] = module
    return module
