"""Example functions: arithmetic and unit conversion (no network, no eval)."""

from __future__ import annotations

import ast
import operator
from typing import Literal

from lollms_server.functions import function

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        if isinstance(node.op, ast.Pow) and abs(_evaluate(node.right)) > 100:
            raise ValueError("exponent too large")
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"unsupported expression element: {type(node).__name__}")


@function
def calculate(expression: str) -> float:
    """Evaluate an arithmetic expression.

    Args:
        expression: Numbers with + - * / // % ** and parentheses, e.g. "(2 + 3) * 4".
    """
    return _evaluate(ast.parse(expression, mode="eval"))


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
