"""Client-defined tools: returned to the client as tool_calls (never executed), and the
round trip (assistant tool_calls + tool result) — directly, and relayed through the openai
binding to another lollms_server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, needs_llama

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


# -- llama.cpp: client tools on the real SmolLM2 -----------------------------------------------
# SmolLM2's chat template knows no tools, so the binding uses the JSON protocol held by a
# grammar: the calls are well formed whatever the model decides. The tests assert on the
# protocol, not on the wisdom of a 135M model.
NAMED = {"type": "function", "function": {"name": "get_weather"}}
F = TypeVar("F", bound=Callable[..., Any])


def llama(test: F) -> F:
    """Marks a test that needs the llama.cpp engine and SmolLM2."""
    for mark in needs_llama:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("llama") / "config.toml"
    base = BASE_CONFIG.replace('[defaults]\nttt_binding = "fake"\n', "")
    path.write_text(base + LLAMA_CONFIG + LLAMA_DEFAULTS)
    with serve_in_thread(create_app(load_config(path))) as url:
        yield url


def _only_call(message: Any) -> tuple[Any, dict[str, Any]]:
    calls = message.tool_calls or []
    assert len(calls) == 1
    arguments = json.loads(calls[0].function.arguments)
    assert isinstance(arguments, dict)
    return calls[0], arguments


@llama
@pytest.mark.parametrize("choice", ["required", NAMED], ids=["required", "named"])
def test_llamacpp_tool_round_trip(llama_url: str, choice: Any) -> None:
    client = openai.OpenAI(base_url=llama_url + "/v1", api_key=API_KEY, max_retries=0)
    first = client.chat.completions.create(
        model="default", messages=QUESTION, tools=TOOLS, tool_choice=choice, temperature=0
    )
    assert first.choices[0].finish_reason == "tool_calls"
    call, arguments = _only_call(first.choices[0].message)
    assert call.function.name == "get_weather" and isinstance(arguments.get("city"), str)
    followup = [
        *QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = client.chat.completions.create(
        model="default",
        messages=followup,
        tools=TOOLS,
        tool_choice="auto",
        temperature=0,
        max_tokens=16,
    )
    answer = second.choices[0]
    if answer.finish_reason == "tool_calls":  # another call (other arguments) is valid too
        assert _only_call(answer.message)[0].function.name == "get_weather"
    else:  # the same call again would get the same result: the binding answers instead
        assert answer.message.content and not answer.message.tool_calls
    assert second.usage is not None and second.usage.completion_tokens > 0


@llama
def test_llamacpp_tool_calls_stream(llama_url: str) -> None:
    client = openai.OpenAI(base_url=llama_url + "/v1", api_key=API_KEY, max_retries=0)
    chunks = [
        c
        for c in client.chat.completions.create(
            model="default", messages=QUESTION, tools=TOOLS, tool_choice=NAMED, stream=True
        )
        if c.choices
    ]
    calls = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].function.name == "get_weather" and calls[0].id
    assert isinstance(json.loads(calls[0].function.arguments or ""), dict)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@llama
def test_llamacpp_tool_choice_none_answers_in_words(llama_url: str) -> None:
    client = openai.OpenAI(base_url=llama_url + "/v1", api_key=API_KEY, max_retries=0)
    reply = client.chat.completions.create(
        model="default", messages=QUESTION, tools=TOOLS, tool_choice="none", max_tokens=8
    )
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError, match="not a tool"):
        client.chat.completions.create(
            model="default",
            messages=QUESTION,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )


@llama
def test_llamacpp_tools_through_the_ollama_client(llama_url: str) -> None:
    import ollama

    client = ollama.Client(host=llama_url, headers={"Authorization": f"Bearer {API_KEY}"})
    tools = [{"type": "function", "function": TOOLS[0]["function"]}]
    options = {"temperature": 0, "num_predict": 12}
    reply = client.chat(model="default", messages=QUESTION, tools=tools, options=options)
    calls = reply.message.tool_calls or []
    if calls:  # auto: the model may answer in words too
        assert calls[0].function.name == "get_weather"
        assert isinstance(calls[0].function.arguments, dict)
        ask = [
            *QUESTION,
            {"role": "assistant", "content": "", "tool_calls": [calls[0].model_dump()]},
            {"role": "tool", "tool_name": "get_weather", "content": "sunny, 21 C"},
        ]
        reply = client.chat(model="default", messages=ask, options={"num_predict": 12})
    assert reply.message.content


def test_llamacpp_native_tool_call_fragments_are_assembled() -> None:
    """Where the chat template calls tools, llama.cpp streams ``delta.tool_calls`` fragments:
    joined by index into whole calls; tool turns go to the template in OpenAI's shapes."""
    from pathlib import Path

    from lollms_server.bindings.llamacpp import LlamaCppBinding, LlamaCppConfig, _wire_messages
    from lollms_server.bindings.types import BindingContext, Message

    binding = LlamaCppBinding(LlamaCppConfig(), BindingContext("llm", Path("/nowhere")))
    calls: dict[int, dict[str, str]] = {}
    fragments = [
        {"index": 0, "id": "call_a", "function": {"name": "get_weather", "arguments": '{"ci'}},
        {"index": 0, "function": {"arguments": 'ty": "Paris"}'}},
        {"index": 1, "id": "call_b", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    for fragment in fragments:
        chunk = {"choices": [{"delta": {"tool_calls": [fragment]}, "finish_reason": None}]}
        assert binding._chunk_events(chunk, False, calls) == ([], None)
    assert calls[0] == {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert calls[1]["name"] == "get_time"
    call = {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    turns = (
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "sunny", tool_call_id="call_a"),
    )
    native = _wire_messages(turns, native=True)
    assert native[0]["tool_calls"] == [call] and native[1]["tool_call_id"] == "call_a"
    text = _wire_messages(turns, native=False)  # templates without tools: plain turns
    assert json.loads(text[0]["content"]) == {"tool": "get_weather", "arguments": {}}
    assert text[1] == {"role": "user", "content": "Result of get_weather: sunny"}
