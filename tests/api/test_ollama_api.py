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
    reply = client.generate(model="fake/scripted-model", prompt="hello there",
                            system="Be brief.", options={"temperature": 0.1, "num_predict": 9,
                                                         "num_ctx": 4096, "seed": 2})
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
    reply = client.chat(model="fake/scripted-model",
                        messages=[{"role": "user", "content": "hi you"}])
    assert reply.message.content == "hi you" and reply.message.role == "assistant"
    parts = list(client.chat(model="thinker/deep", stream=True,
                             messages=[{"role": "user", "content": "2+2"}]))
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
        client.generate(model="fake/scripted-model", prompt="x", options={"warp": 1})
    assert info.value.status_code == 400 and "warp" in info.value.error
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="fake/scripted-model", input="x")
    assert info.value.status_code == 400
    anonymous = ollama.Client(host=live[1])
    with pytest.raises(ollama.ResponseError) as info:
        anonymous.list()
    assert info.value.status_code == 401


async def test_async_client(live) -> None:
    client = ollama.AsyncClient(host=live[1], headers=AUTH)
    reply = await client.chat(model="fake/scripted-model",
                              messages=[{"role": "user", "content": "async ok"}])
    assert reply.message.content == "async ok"
    parts = [p async for p in await client.generate(model="fake/scripted-model",
                                                    prompt="p q", stream=True)]
    assert "".join(p.response or "" for p in parts) == "p q"


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
def test_llamacpp_through_the_ollama_client(tmp_path: Path, mark: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + LLAMA_CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        client = ollama.Client(host=url, headers=AUTH)
        reply = client.chat(model=f"llm/{MODEL_NAME}", options={"temperature": 0},
                            messages=[{"role": "user", "content":
                                       "What is the capital of France?"}])
        assert "Paris" in reply.message.content
