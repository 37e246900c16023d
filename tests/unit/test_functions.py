"""Functions: JSON schemas from type hints and docstrings, validation, safe calls."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import pytest

from lollms_server.functions.registry import FunctionNotFound, FunctionRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "zoos" / "functions"

MODULE = '''
import asyncio
from enum import Enum
from typing import Literal, Optional

from pydantic import BaseModel, Field

from lollms_server.functions import function


class Colour(str, Enum):
    red = "red"
    blue = "blue"


class Address(BaseModel):
    city: str
    zip_code: Optional[str] = Field(None, description="Postal code.")


@function
def lookup(city: str, unit: Literal["C", "F"] = "C", tags: list[str] | None = None,
           limit: int = 3) -> dict:
    """Find things in a city.

    Args:
        city: The city's name.
        unit: Temperature unit.
        tags: Only things with these tags.
    """
    return {"city": city, "unit": unit, "tags": tags or [], "limit": limit}


@function(name="paint", description="Paint an address.", timeout=5)
async def paint_house(address: Address, colour: Colour) -> str:
    return f"{address.city} is now {colour.value}"


@function(timeout=0.2)
async def slow() -> str:
    await asyncio.sleep(5)
    return "late"


@function
def broken(x: int) -> int:
    """Always fails."""
    raise RuntimeError(f"broken by {x}")


@function
def variadic(*args: int) -> int:
    return 0


def not_offered() -> None:
    pass
'''


@pytest.fixture
def registry(tmp_path: Path) -> FunctionRegistry:
    (tmp_path / "tools.py").write_text(MODULE)
    (tmp_path / "explicit.py").write_text(
        textwrap.dedent('''
        def double(n: int) -> int:
            """Twice n."""
            return 2 * n

        def hidden() -> None:
            pass

        FUNCTIONS = [double]
    ''')
    )
    (tmp_path / "bad_import.py").write_text("import does_not_exist\n")
    (tmp_path / "z_dupe.py").write_text(
        "from lollms_server.functions import function\n\n@function\ndef double(n: int) -> int:"
        "\n    return n\n"
    )
    return FunctionRegistry.discover([tmp_path], default_timeout=2)


def test_schemas_from_signatures(registry: FunctionRegistry) -> None:
    names = [f.name for f in registry.all()]
    assert names == ["broken", "double", "lookup", "paint", "slow"]
    lookup = registry.get("lookup")
    assert lookup.description == "Find things in a city."
    assert lookup.parameters == {
        "type": "object",
        "additionalProperties": False,
        "required": ["city"],
        "properties": {
            "city": {"type": "string", "description": "The city's name."},
            "unit": {
                "enum": ["C", "F"],
                "type": "string",
                "default": "C",
                "description": "Temperature unit.",
            },
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
                "description": "Only things with these tags.",
            },
            "limit": {"type": "integer", "default": 3},
        },
    }
    paint = registry.get("paint")
    assert paint.description == "Paint an address." and paint.timeout == 5 and paint.is_async
    assert paint.parameters["required"] == ["address", "colour"]
    defs = paint.parameters["$defs"]
    assert defs["Colour"]["enum"] == ["red", "blue"]
    assert defs["Address"]["required"] == ["city"]
    assert paint.tool()["function"]["name"] == "paint"
    assert registry.get("double").description == "Twice n."


def test_problems_are_reported_not_fatal(registry: FunctionRegistry) -> None:
    reasons = " | ".join(p["reason"] for p in registry.problems)
    assert "import failed: ModuleNotFoundError" in reasons
    assert "*args/**kwargs" in reasons
    assert "'double' already defined" in reasons
    with pytest.raises(FunctionNotFound, match="known functions: broken, double"):
        registry.get("nope")


async def test_calls_validate_and_contain_failures(registry: FunctionRegistry) -> None:
    ok = await registry.call("lookup", '{"city": "Paris", "tags": ["museum"]}')
    assert ok.ok and ok.value == {"city": "Paris", "unit": "C", "tags": ["museum"], "limit": 3}
    nested = await registry.call("paint", {"address": {"city": "Lyon"}, "colour": "blue"})
    assert nested.value == "Lyon is now blue"
    bad = await registry.call("lookup", {"town": "Paris", "unit": "K"})
    assert not bad.ok and "city: Field required" in bad.error
    assert "unit: Input should be 'C' or 'F'" in bad.error and "town" in bad.error
    assert json.loads(bad.as_text()) == {"error": bad.error}
    assert "not valid JSON" in (await registry.call("lookup", "{city")).error
    assert (await registry.call("slow", {})).error == "timed out after 0.2 s"
    assert (await registry.call("broken", {"x": 7})).error == "RuntimeError: broken by 7"
    assert "unknown function 'nope'" in (await registry.call("nope", {})).error


async def test_example_modules() -> None:
    registry = FunctionRegistry.discover([EXAMPLES])
    assert {f.name for f in registry.all()} == {
        "calculate",
        "convert_length",
        "current_time",
        "count_days",
    }
    assert (await registry.call("calculate", {"expression": "(2 + 3) * 4"})).value == 20
    unsafe = await registry.call("calculate", {"expression": "__import__('os')"})
    assert "is not arithmetic" in unsafe.error
    nested = await registry.call("calculate", {"expression": "((9 ** 99) ** 99) ** 99"})
    assert "too large" in nested.error  # refused before it is computed
    km = await registry.call("convert_length", {"value": 1, "from_unit": "mi", "to_unit": "km"})
    assert km.value == pytest.approx(1.609344)
    days = await registry.call(
        "count_days",
        {"period": {"start": "2026-11-23", "end": "2026-11-29"}, "include_weekends": False},
    )
    assert days.value == 5
    now = await registry.call("current_time", {"timezone": "Europe/Paris"})
    assert now.ok and now.value.endswith(("+01:00", "+02:00"))
    assert (
        "unknown time zone"
        in (await registry.call("current_time", {"timezone": "Mars/Base"})).error
    )


def test_decision_schema_resolves_nested_models() -> None:
    from lollms_server.generation.tools import decision_schema, parse_decision

    registry = FunctionRegistry.discover([EXAMPLES])
    schema = decision_schema(
        [registry.get("count_days"), registry.get("calculate")], required=False
    )
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs == ["#/$defs/count_days__Period"]
    assert set(schema["$defs"]) == {"count_days__Period"}
    assert [o["properties"]["tool"]["const"] for o in schema["anyOf"]] == [
        "count_days",
        "calculate",
        "none",
    ]
    assert parse_decision(
        '<tool_call>{"name": "calculate", "arguments": {"expression": "1"}}</tool_call>'
    ) == ("calculate", {"expression": "1"})
    assert parse_decision('{"tool": "none"}') is None
    assert parse_decision("Paris is the capital.") == "Paris is the capital."


ODD_MODULES = {
    "listed_int.py": "FUNCTIONS = 5\n",
    "listed_odd.py": "import functools\ndef f(a: int, b: int) -> int:\n    return a\n"
    "class C:\n    def __call__(self) -> None: ...\n"
    "FUNCTIONS = [functools.partial(f, 1), C(), None, 'x']\n",
    "exits.py": "raise SystemExit(3)\n",
    "bad_timeout.py": "from lollms_server.functions import function\n"
    "@function(timeout=-1)\ndef slow() -> None: ...\n",
    "positional.py": "from lollms_server.functions import function\n"
    "@function\ndef add(a: int, b: int, /) -> int:\n    return a + b\n",
    "reserved.py": "from lollms_server.functions import function\n"
    "@function\ndef lookup(model_config: str) -> str:\n    return model_config\n",
    "fine.py": "from lollms_server.functions import function\n"
    "@function\ndef ok() -> str:\n    return 'ok'\n",
}


def test_odd_modules_are_problems_not_crashes(tmp_path: Path) -> None:
    for name, text in ODD_MODULES.items():
        (tmp_path / name).write_text(text)
    registry = FunctionRegistry.discover([tmp_path])
    assert [f.name for f in registry.all()] == ["ok"]
    reasons = {Path(p["path"]).name: p["reason"] for p in registry.problems}
    assert "FUNCTIONS must be a list" in reasons["listed_int.py"]
    assert "is not a function" in reasons["listed_odd.py"]
    assert "SystemExit" in reasons["exits.py"]
    assert "positive number of seconds" in reasons["bad_timeout.py"]
    assert "positional-only" in reasons["positional.py"]
    assert "model_config" in reasons["reserved.py"]


async def test_stuck_sync_functions_have_their_own_bounded_workers(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time\nfrom lollms_server.functions import function\n"
        "@function(timeout=0.1)\ndef stuck() -> None:\n    time.sleep(1)\n"
        "@function\ndef quick() -> str:\n    return 'ok'\n"
    )
    registry = FunctionRegistry.discover([tmp_path])
    timed_out = await asyncio.gather(*(registry.call("stuck", {}) for _ in range(8)))
    assert all("timed out" in (r.error or "") for r in timed_out)
    busy = await registry.call("quick", {})
    assert "busy" in (busy.error or "")
    # Other work on the loop's default executor is untouched meanwhile.
    assert await asyncio.wait_for(asyncio.to_thread(lambda: 1), 0.5) == 1
    await asyncio.sleep(1.1)  # the stuck calls end: their workers are free again
    assert (await registry.call("quick", {})).value == "ok"
