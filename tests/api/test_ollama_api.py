"""The Ollama-compatible /api, driven by the official ollama client against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, MODEL_NAME, needs_llama

EXTRA = """
[bindings.thinker]
type = "scripted"
models = ["deep"]
reply = "<think>hmm</think>Four."

[bindings.tools]
type = "scripted_tools"
models = ["tool-model"]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    path = tmp_path_factory.mktemp("ollama") / "config.toml"
    path.write_text(BASE_CONFIG + EXTRA)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture
def client(live: tuple[FastAPI, str]) -> ollama.Client:
    return ollama.Client(host=live[1], headers=AUTH)


def test_list_show_version(client: ollama.Client, live) -> None:
    names = [m.model for m in client.list().models]
    assert "fake/scripted-model" in names and "thinker/deep" in names
    shown = client.show("fake/other-model")
    assert shown.modelinfo is not None and shown.modelinfo["context_length"] == 4096
    import httpx

    assert httpx.get(live[1] + "/api/version", headers=AUTH).json()["version"]
    assert httpx.get(live[1] + "/api/version").status_code == 401


def test_generate_and_stream(client: ollama.Client, live) -> None:
    reply = client.generate(
        model="fake/scripted-model",
        prompt="hello there",
        system="Be brief.",
        options={"temperature": 0.1, "num_predict": 9, "num_ctx": 4096, "seed": 2},
    )
    assert reply.response == "hello there" and reply.done
    assert reply.eval_count == 2 and reply.prompt_eval_count == 4  # system + prompt words
    assert reply.total_duration and reply.total_duration > 0
    request = live[0].state.bindings.get("fake").requests[-1]
    assert request.params.max_tokens == 9 and request.params.seed == 2
    assert [m.role for m in request.messages] == ["system", "user"]
    parts = list(client.generate(model="fake/scripted-model", prompt="a b c", stream=True))
    assert "".join(p.response or "" for p in parts) == "a b c"
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_chat_stream_and_thinking(client: ollama.Client) -> None:
    reply = client.chat(
        model="fake/scripted-model", messages=[{"role": "user", "content": "hi you"}]
    )
    assert reply.message.content == "hi you" and reply.message.role == "assistant"
    parts = list(
        client.chat(
            model="thinker/deep", stream=True, messages=[{"role": "user", "content": "2+2"}]
        )
    )
    assert "".join(p.message.content or "" for p in parts) == "Four."
    assert "".join(p.message.thinking or "" for p in parts) == "hmm"
    assert parts[-1].done


def test_ps_shows_loaded_models_and_keep_alive(client: ollama.Client, live) -> None:
    client.generate(model="fake/other-model", prompt="x", keep_alive="10m")
    loaded = {m.model: m for m in client.ps().models}
    assert "fake/other-model" in loaded
    client.generate(model="fake/other-model", prompt="x", keep_alive=0)
    import time

    time.sleep(0.2)
    assert "fake/other-model" not in {m.model for m in client.ps().models}


def test_errors(client: ollama.Client, live) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="ghost/none", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 404 and "not found" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.generate(model="fake/scripted-model", prompt="x", options={"num_predict": "x"})
    assert info.value.status_code == 400 and "options.num_predict" in info.value.error
    import httpx

    invalid = httpx.post(
        live[1] + "/api/chat",
        headers=AUTH,
        json={"model": "fake/scripted-model", "messages": "not a list"},
    )
    assert invalid.status_code == 422
    assert "messages" in invalid.json()["error"]  # a string: Ollama's error shape
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="fake/scripted-model", input="x")
    assert info.value.status_code == 400
    anonymous = ollama.Client(host=live[1])
    with pytest.raises(ollama.ResponseError) as info:
        anonymous.list()
    assert info.value.status_code == 401


def test_options_ollama_ignores_are_ignored(client: ollama.Client, live) -> None:
    """Ollama logs and ignores options it does not know; clients rely on it (lollms_client
    always sends ``think``; the SDK's own Options type has ``tfs_z``, ``penalize_newline``)."""
    reply = client.generate(
        model="fake/scripted-model",
        prompt="still fine",
        options={
            "think": False,
            "tfs_z": 1.0,
            "penalize_newline": True,
            "num_ctx": 2048,
            "min_p": 0.05,
            "temperature": 0.2,
        },
    )
    assert reply.response == "still fine"
    request = live[0].state.bindings.get("fake").requests[-1]
    assert request.params.temperature == 0.2 and request.extra == {"min_p": 0.05}


def test_tool_calls_round_trip(client: ollama.Client, live) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather of a city.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    reply = client.chat(model="tools/tool-model", messages=ask, tools=tools)
    call = reply.message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    streamed = [
        p
        for p in client.chat(model="tools/tool-model", messages=ask, tools=tools, stream=True)
        if p.message.tool_calls
    ]
    assert streamed[0].message.tool_calls[0].function.name == "get_weather"
    answer = client.chat(
        model="tools/tool-model",
        tools=tools,
        messages=[
            *ask,
            reply.message,
            {"role": "tool", "content": "22 C", "tool_name": "get_weather"},
        ],
    )
    assert answer.message.content == "The tool said: 22 C"
    sent = live[0].state.bindings.get("tools").requests[-1].messages
    assert sent[1].tool_calls[0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
    }
    assert sent[2].tool_call_id == sent[1].tool_calls[0]["id"]


def test_think_false_drops_thoughts(client: ollama.Client) -> None:
    ask = [{"role": "user", "content": "2+2?"}]
    assert client.chat(model="thinker/deep", messages=ask).message.thinking == "hmm"
    quiet = client.chat(model="thinker/deep", messages=ask, think=False)
    assert quiet.message.thinking is None and quiet.message.content == "Four."


def test_load_unload_show_and_lenient_bodies(client: ollama.Client, live) -> None:
    import httpx

    loaded = client.chat(model="fake/other-model", messages=[])
    assert loaded.done_reason == "load" and loaded.eval_count is None
    assert client.generate(model="fake/other-model", keep_alive=0).done_reason == "unload"
    # The older "name" field, and a body sent without a JSON content type (curl -d).
    shown = httpx.post(live[1] + "/api/show", headers=AUTH, content=b'{"name": "tools/tool-model"}')
    assert shown.status_code == 200
    assert shown.json()["capabilities"] == ["completion", "tools"]


def test_model_file_management_is_a_clear_501(client: ollama.Client) -> None:
    for call in (
        lambda: client.pull("fake/scripted-model"),
        lambda: client.delete("fake/scripted-model"),
        lambda: client.copy("fake/scripted-model", "x"),
    ):
        with pytest.raises(ollama.ResponseError) as info:
            call()
        assert info.value.status_code == 501 and "model files" in info.value.error


async def test_async_client(live) -> None:
    client = ollama.AsyncClient(host=live[1], headers=AUTH)
    reply = await client.chat(
        model="fake/scripted-model", messages=[{"role": "user", "content": "async ok"}]
    )
    assert reply.message.content == "async ok"
    parts = [
        p
        async for p in await client.generate(model="fake/scripted-model", prompt="p q", stream=True)
    ]
    assert "".join(p.response or "" for p in parts) == "p q"


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
def test_llamacpp_through_the_ollama_client(tmp_path: Path, mark: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + LLAMA_CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        client = ollama.Client(host=url, headers=AUTH)
        reply = client.chat(
            model=f"llm/{MODEL_NAME}",
            options={"temperature": 0},
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in reply.message.content
