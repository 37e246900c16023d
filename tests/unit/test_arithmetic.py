"""The server's arithmetic evaluator: what it computes, and the work it refuses."""

from __future__ import annotations

import pytest

from lollms_server.functions.arithmetic import MAX_EXPRESSION, evaluate


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("(2 + 3) * 4", 20),
        ("7 // 2 + 7 % 2", 4),
        ("2 ^ 10", 1024),  # read as a power, as people write it
        ("sqrt(16) + pi - pi", 4.0),
        ("max(1, abs(-5), round(2.6))", 5),
        ("factorial(10)", 3628800),
        ("-2 ** -1", -0.5),
    ],
)
def test_arithmetic_is_computed(expression: str, value: float) -> None:
    assert evaluate(expression) == value


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').getcwd()", "is not arithmetic"),
        ("math.pi", "is not arithmetic"),
        ("(1).__class__", "is not arithmetic"),
        ("[1, 2]", "is not arithmetic"),
        ("sqrt", "is not a number"),
        ("2 ** 100000", "exponents are at most"),
        ("9 ** 9 ** 9", "exponents are at most"),
        ("(10 ** 4000) ** 10", "too large"),  # refused before it is computed
        ("(10 ** 4000) * (10 ** 4000)", "too large"),
        ("factorial(100000)", "factorial takes numbers up to"),
        ("comb(10 ** 6, 5000)", "comb takes numbers up to"),
        ("1 +", "not an expression"),
        ("1" * (MAX_EXPRESSION + 1), "too long"),
    ],
)
def test_what_is_not_arithmetic_or_too_much_work_is_refused(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        evaluate(expression)


def test_arithmetic_errors_are_arithmetic_errors() -> None:
    with pytest.raises(ZeroDivisionError):
        evaluate("1 / 0")
