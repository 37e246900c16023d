"""``lollms.functions.roll_a_dice``: a six-sided die, for the model to call."""

from __future__ import annotations

import random
from typing import Any

from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["roll_a_dice", "roll_a_dice_function"]


def roll_a_dice() -> int:
    """A number from 1 to 6."""
    return random.randint(1, 6)  # noqa: S311 - a game die, not a secret


def roll_a_dice_function(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The function definition of ``roll_a_dice``."""
    return {
        "function_name": "roll_a_dice",
        "function": roll_a_dice,
        "function_description": "Rolls a six-sided die and returns a number from 1 to 6.",
        "function_parameters": [],
    }


__getattr__ = missing_name(__name__)
