"""Arithmetic from text, evaluated safely: the one evaluator behind the calculators the
server offers (the example user function, lollms' ``calculator`` for zoo processors).

Only numbers, the arithmetic operators, parentheses, the constants and functions of
:mod:`math` and ``abs``/``round``/``min``/``max`` are accepted (a tree walk, never ``eval``),
and the work is bounded: the expression's length, a power's exponent and result, the
arguments of ``factorial``/``comb``/``perm`` and the size of every intermediate number.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_EXPRESSION", "evaluate"]

MAX_EXPRESSION = 1000  # characters
MAX_EXPONENT = 10_000
MAX_DIGITS = 4300  # Python's own limit for converting an int to text

MAX_BITS = int(MAX_DIGITS * 3.33)
_COMBINATORIAL = {"factorial", "comb", "perm"}  # huge results from small arguments
MAX_COMBINATORIAL = 1500


def _number(value: Any) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise ValueError("the number is too large")
    return value


def _power(base: Any, exponent: Any) -> Any:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponents are at most {MAX_EXPONENT}")
    whole = isinstance(base, int) and isinstance(exponent, int)
    if whole and base.bit_length() * exponent > MAX_BITS:  # checked before it is computed
        raise ValueError("the number is too large")
    return base**exponent


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _power,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_NAMES: dict[str, Any] = {
    **{n: getattr(math, n) for n in dir(math) if not n.startswith("_")},
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
}


def _walk(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _walk(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _number(_BINARY[type(node.op)](_walk(node.left), _walk(node.right)))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_walk(node.operand))
    if isinstance(node, ast.Name) and node.id in _NAMES:
        return _NAMES[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function, arguments = _walk(node.func), [_walk(a) for a in node.args]
        if node.func.id in _COMBINATORIAL and any(abs(a) > MAX_COMBINATORIAL for a in arguments):
            raise ValueError(f"{node.func.id} takes numbers up to {MAX_COMBINATORIAL}")
        if callable(function):
            return _number(function(*arguments))
    raise ValueError(f"'{ast.unparse(node)}' is not arithmetic")


def evaluate(expression: str) -> int | float:
    """The value of ``expression``; ValueError (or ArithmeticError) naming why it has none."""
    if len(expression) > MAX_EXPRESSION:
        raise ValueError(f"the expression is too long (at most {MAX_EXPRESSION} characters)")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an expression: {exc.msg}") from None
    try:
        value = _walk(tree)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(value, int | float):
        raise ValueError(f"'{expression}' is not a number")
    return value
