"""Example functions: arithmetic (the server's bounded evaluator, no eval) and unit
conversion (no network)."""

from __future__ import annotations

from typing import Literal

from lollms_server.functions import function
from lollms_server.functions.arithmetic import evaluate


@function
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression.

    Args:
        expression: Numbers with + - * / // % ** and parentheses, and the functions of
            Python's math module, e.g. "(2 + 3) * sqrt(16)".
    """
    return evaluate(expression)


_TO_METRES = {
    "mm": 0.001,
    "cm": 0.01,
    "m": 1.0,
    "km": 1000.0,
    "in": 0.0254,
    "ft": 0.3048,
    "mi": 1609.344,
}


@function
def convert_length(
    value: float,
    from_unit: Literal["mm", "cm", "m", "km", "in", "ft", "mi"],
    to_unit: Literal["mm", "cm", "m", "km", "in", "ft", "mi"],
) -> float:
    """Convert a length between units.

    Args:
        value: The length to convert.
        from_unit: Its unit.
        to_unit: The unit wanted.
    """
    return value * _TO_METRES[from_unit] / _TO_METRES[to_unit]
