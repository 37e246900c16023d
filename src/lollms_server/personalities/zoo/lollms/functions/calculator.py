"""``lollms.functions.calculator``: arithmetic the model asks for, evaluated safely and
within bounds by the server's one evaluator (:mod:`lollms_server.functions.arithmetic`)."""

from __future__ import annotations

from typing import Any

from lollms_server.functions.arithmetic import evaluate
from lollms_server.personalities.zoo.lollms._missing import missing_name

__all__ = ["calculate", "calculate_function"]


def calculate(expression: str) -> float | int | str:
    """The value of ``expression``, or the reason it has none (for the model to read)."""
    try:
        return evaluate(str(expression))
    except (ValueError, ArithmeticError) as exc:
        return f"Cannot calculate '{expression}': {exc}"


def calculate_function(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """The function definition of ``calculate``."""
    return {
        "function_name": "calculate",
        "function": calculate,
        "function_description": "Computes a mathematical expression (numbers, + - * / // % "
        "** and the functions of Python's math module) and returns its value.",
        "function_parameters": [{"name": "expression", "type": "str"}],
    }


__getattr__ = missing_name(__name__)
