"""``lollms.functions.take_a_photo``: there is no camera on a server; the function tells the
model so."""

from __future__ import annotations

from functools import partial
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["take_a_photo", "take_a_photo_function", "take_photo"]

NOT_AVAILABLE = (
    "take_a_photo is not available on a server: there is no camera. Ask the user to attach "
    "the image to the message instead."
)


def take_a_photo(
    processor: Any = None,
    client: Any = None,
    use_ui: bool = False,
    use_a_single_photo_at_a_time: bool = True,
) -> str:
    """The sentence saying no photo can be taken here."""
    return NOT_AVAILABLE


take_photo = take_a_photo  # an older name


def take_a_photo_function(
    processor: Any,
    client: Any,
    use_ui: bool = False,
    use_a_single_photo_at_a_time: bool = True,
) -> dict[str, Any]:
    """The function definition of ``take_a_photo``."""
    return {
        "function_name": "take_a_photo",
        "function": partial(take_a_photo, processor=processor, client=client),
        "function_description": "Takes a photo with the webcam (not available on a server).",
        "function_parameters": [],
    }


__getattr__ = missing_name(__name__)
