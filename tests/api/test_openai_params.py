"""No output-changing parameter dropped in silence on /v1: honoured or a 400 naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread

CONFIG = (
    BASE_CONFIG
    + """
[bindings.tools]
type = "scripted_tools"

[bindings.relay]
type = "openai"
base_url = "http://127.0.0.1:9/v1"
models = ["m"]
max_retries = 0
"""
)
FUNCTIONS = [
    {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
ASK = [{"role": "user", "content": "Weather in Paris?"}]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, openai.OpenAI]]:
    path = tmp_path_factory.mktemp("params") / "config.toml"
    path.write_text(CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)


def _last(app: FastAPI, instance: str = "fake") -> Any:
    return app.state.bindings.get(instance).requests[-1]


def test_sampling_extras_reach_the_binding(live: tuple[FastAPI, openai.OpenAI]) -> None:
    app, client = live
    extra = {"top_k": 7, "min_p": 0.05, "repeat_penalty": 1.2}
    client.chat.completions.create(
        model="fake/scripted-model",
        messages=ASK,
        logit_bias={"42": -100},
        extra_body=extra,
    )
    request = _last(app)
    assert request.params.top_k == 7 and request.params.repeat_penalty == 1.2
    assert request.extra["min_p"] == 0.05 and request.extra["logit_bias"] == {"42": -100}
    client.completions.create(model="fake/scripted-model", prompt="hi", extra_body=extra)
    assert _last(app).params.top_k == 7 and _last(app).extra["min_p"] == 0.05


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs"),
        ({"extra_body": {"top_logprobs": 2}}, "top_logprobs"),
    ],
)
def test_logprobs_are_refused_by_name(
    live: tuple[FastAPI, openai.OpenAI], kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live[1].chat.completions.create(model="fake/scripted-model", messages=ASK, **kwargs)
    assert info.value.body["param"] == param  # type: ignore[index]
    assert "token probabilities" in info.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        live[1].completions.create(model="fake/scripted-model", prompt="hi", logprobs=2)


def test_extras_a_binding_cannot_take_are_refused_by_name(
    live: tuple[FastAPI, openai.OpenAI],
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        live[1].chat.completions.create(model="relay/m", messages=ASK, extra_body={"min_p": 0.1})
    assert info.value.body["param"] == "min_p"  # type: ignore[index]
    assert "relay" in info.value.body["message"]  # type: ignore[index]


def test_legacy_functions_map_to_tools(live: tuple[FastAPI, openai.OpenAI]) -> None:
    app, client = live
    first: Any = client.chat.completions.create(
        model="tools/scripted-model", messages=ASK, functions=FUNCTIONS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "function_call"
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Paris"}
    assert not choice.message.tool_calls
    assert _last(app, "tools").tools[0]["function"]["name"] == "get_weather"
    followup = [
        *ASK,
        {"role": "assistant", "content": None, "function_call": choice.message.function_call},
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ]
    second = client.chat.completions.create(
        model="tools/scripted-model", messages=followup, functions=FUNCTIONS
    )
    assert second.choices[0].message.content == "The tool said: sunny"
    chunks = list(
        client.chat.completions.create(
            model="tools/scripted-model",
            messages=ASK,
            functions=FUNCTIONS,
            function_call={"name": "get_weather"},
            stream=True,
        )
    )
    calls = [c.choices[0].delta.function_call for c in chunks if c.choices]
    assert [c.name for c in calls if c is not None] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "function_call"
    assert _last(app, "tools").tool_choice == {
        "type": "function",
        "function": {"name": "get_weather"},
    }
    with pytest.raises(openai.BadRequestError, match="not both"):
        client.chat.completions.create(
            model="tools/scripted-model",
            messages=ASK,
            functions=FUNCTIONS,
            tools=[{"type": "function", "function": FUNCTIONS[0]}],
        )
