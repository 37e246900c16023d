"""Personalities, scripts and the tool loop on the real llama.cpp engine with SmolLM2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, needs_llama

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [*needs_llama, pytest.mark.slow]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    base = BASE_CONFIG.replace('[defaults]\nttt_binding = "fake"\n', "")
    path = tmp_path / "config.toml"
    path.write_text(
        base
        + LLAMA_CONFIG
        + LLAMA_DEFAULTS
        + f"""
[paths]
personalities = "{ROOT / "zoos" / "personalities"}"
functions = "{ROOT / "zoos" / "functions"}"
"""
    )
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=AUTH,
            timeout=120,
        ) as c,
    ):
        yield c


async def test_smollm2_calls_a_function_through_the_prompt_protocol(
    client: httpx.AsyncClient,
) -> None:
    body = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "What is 12 * 7?",
                "functions": ["calculate"],
                "tool_choice": "required",
                "max_tool_rounds": 2,
                "parameters": {"max_tokens": 48, "temperature": 0},
            },
        )
    ).json()
    calls = [o["data"] for o in body["output"] if o["type"] == "tool_call"]
    results = [o["data"] for o in body["output"] if o["type"] == "tool_result"]
    assert calls and calls[0]["name"] == "calculate"
    # llama.cpp's grammar held the model to the decision schema: valid JSON arguments.
    assert isinstance(json.loads(calls[0]["arguments"])["expression"], str)
    assert len(results) == len(calls) and all(r["content"] for r in results)
    assert body["output"][0]["type"] == "text" and body["output"][0]["data"].strip()
    assert body["usage"]["completion_tokens"] > 0
    nested = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "How many days from 2026-01-01 to 2026-01-10?",
            "functions": ["count_days"],
            "tool_choice": "required",
            "max_tool_rounds": 1,
            "parameters": {"max_tokens": 32, "temperature": 0},
        },
    )
    assert nested.status_code == 200, nested.text  # the grammar resolves nested $defs
    call = next(o["data"] for o in nested.json()["output"] if o["type"] == "tool_call")
    assert set(json.loads(call["arguments"])["period"]) == {"start", "end"}


async def test_smollm2_with_a_personality_and_both_script_forms(client: httpx.AsyncClient) -> None:
    guide = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "What is the capital of France?",
                "personality": "tour_guide",
                "parameters": {"max_tokens": 40, "temperature": 0},
            },
        )
    ).json()
    assert "Paris" in guide["output"][0]["data"]
    summary = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "Cats are small domesticated carnivorous mammals. They are valued by "
                "humans for companionship and for their ability to kill vermin.",
                "personality": "zoo_summarizer",
                "parameters": {"temperature": 0},
            },
        )
    ).json()
    assert [s["kind"] for s in summary["steps"]] == ["step_start", "step_end"]
    assert "cat" in summary["output"][0]["data"].lower()
    plan = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "Make a cup of tea",
                "personality": "step_planner",
                "personality_config": {"plan_tokens": 48, "answer_tokens": 48},
            },
        )
    ).json()
    assert plan["steps"][0] == {"kind": "step_start", "text": "Planning", "ok": None, "data": {}}
    assert plan["output"][0]["data"].strip()
