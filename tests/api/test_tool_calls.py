"""Client-defined tools: returned to the client as tool_calls (never executed), and the
round trip (assistant tool_calls + tool result) — directly, and relayed through the openai
binding to another lollms_server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    upstream_cfg = tmp_path_factory.mktemp("b") / "config.toml"
    upstream_cfg.write_text(BASE_CONFIG + '[bindings.tools]\ntype = "scripted_tools"\n')
    with serve_in_thread(create_app(load_config(upstream_cfg))) as upstream:
        edge_cfg = tmp_path_factory.mktemp("a") / "config.toml"
        edge_cfg.write_text(
            BASE_CONFIG
            + f"""
[bindings.tools]
type = "scripted_tools"

[bindings.relay]
type = "openai"
base_url = "{upstream}/v1"
api_key = "{API_KEY}"
"""
        )
        with serve_in_thread(create_app(load_config(edge_cfg))) as edge:
            yield edge + "/v1", upstream


@pytest.mark.parametrize("model", ["tools/scripted-model", "relay/tools/scripted-model"])
def test_tool_call_round_trip(urls: tuple[str, str], model: str) -> None:
    client = openai.OpenAI(base_url=urls[0], api_key=API_KEY, max_retries=0)
    first = client.chat.completions.create(
        model=model, messages=QUESTION, tools=TOOLS, tool_choice="auto"
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    followup = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(model=model, messages=followup, tools=TOOLS)
    assert second.choices[0].message.content == "The tool said: sunny, 21 C"
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("model", ["tools/scripted-model", "relay/tools/scripted-model"])
def test_tool_calls_stream(urls: tuple[str, str], model: str) -> None:
    client = openai.OpenAI(base_url=urls[0], api_key=API_KEY, max_retries=0)
    chunks = [
        c
        for c in client.chat.completions.create(
            model=model, messages=QUESTION, tools=TOOLS, stream=True
        )
        if c.choices
    ]
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tools_refused_where_the_binding_cannot(urls: tuple[str, str]) -> None:
    client = openai.OpenAI(base_url=urls[0], api_key=API_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="cannot call tools"):
        client.chat.completions.create(model="fake/scripted-model", messages=QUESTION, tools=TOOLS)
