"""``lollms.functions.select_image_file``: there is no file dialog on a server; the function
tells the model so."""

from __future__ import annotations

from functools import partial
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["select_image_file", "select_image_file_function"]

NOT_AVAILABLE = (
    "select_image_file is not available on a server: there is no file dialog. Ask the user "
    "to attach the image to the message instead."
)


def select_image_file(processor: Any = None, client: Any = None) -> str:
    """The sentence saying no file can be picked here."""
    return NOT_AVAILABLE


def select_image_file_function(processor: Any, client: Any) -> dict[str, Any]:
    """The function definition of ``select_image_file``."""
    return {
        "function_name": "select_image_file",
        "function": partial(select_image_file, processor=processor, client=client),
        "function_description": "Opens a dialog to pick an image file (not available on a server).",
        "function_parameters": [],
    }


__getattr__ = missing_name(__name__)
