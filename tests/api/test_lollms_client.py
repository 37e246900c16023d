"""lollms-client (the real package) against a live lollms_server: its `lollms` binding
(OpenAI /v1 plus /lollms/v1) and its `lollms_webui` binding (/lollms_generate)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from lollms_client import LollmsClient

from lollms_server.app import create_app
from lollms_server.config import load_config
from lollms_server.personalities.prompting import split_lollms_prompt
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.live import serve_in_thread


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    path = tmp_path_factory.mktemp("lollms") / "config.toml"
    path.write_text(BASE_CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


def _client(url: str, binding: str) -> LollmsClient:
    return LollmsClient(
        llm_binding_name=binding,
        llm_binding_config={
            "host_address": url,
            "model_name": "fake/scripted-model",
            "service_key": API_KEY,
        },
    )


def test_lollms_binding_generate_stream_tokenize_models(live) -> None:
    app, url = live
    client = _client(url, "lollms")
    assert (
        client.generate_text("hello from lollms-client", n_predict=20) == "hello from lollms-client"
    )
    chunks: list[str] = []
    streamed = client.generate_text(
        "stream me please", stream=True, streaming_callback=lambda c, *_: chunks.append(c) or True
    )
    assert streamed == "stream me please" and chunks == ["stream ", "me ", "please"]
    tokens = client.tokenize("a b a ")
    assert len(tokens) == 3 and tokens[0] == tokens[2]
    assert client.count_tokens("a b a ") == 3
    assert client.detokenize(tokens) == "a b a "
    assert client.get_ctx_size() == 4096
    names = [m["model_name"] for m in client.list_models()]
    assert names == ["fake/scripted-model", "fake/other-model"]
    assert client.listMountedPersonalities() == []


def test_lollms_v1_routes(live) -> None:
    _, url = live
    caps = httpx.get(url + "/lollms/v1/capabilities", headers=AUTH).json()
    assert caps["active_bindings"] == {"llm": ["fake"]}
    llm = httpx.get(url + "/lollms/v1/llm/models", headers=AUTH).json()["data"]
    assert llm[0]["model_name"] == "fake/scripted-model" and llm[0]["context_size"] == 4096
    assert httpx.get(url + "/lollms/v1/tti/models", headers=AUTH).json() == {"data": []}
    only = httpx.get(
        url + "/lollms/v1/llm/models", params={"binding_alias": "nobody"}, headers=AUTH
    ).json()["data"]
    assert only == []  # list_models_by_type(..., binding_alias=...) filters on the instance
    assert httpx.get(url + "/lollms/v1/capabilities").status_code == 401


def test_lollms_webui_binding(live) -> None:
    app, url = live
    client = _client(url, "lollms_webui")
    # lollms-client 1.21's LollmsClient.generate_text passes `think=` that this binding does
    # not accept (a bug of the client), so its binding object is called directly.
    answer = client.llm.generate_text("plain webui", n_predict=10, system_prompt="Be kind")
    assert answer == "plain webui"
    request = app.state.bindings.get("fake").requests[-1]
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be kind"),
        ("user", "plain webui"),
    ]
    assert request.params.max_tokens == 10
    streamed = client.llm.generate_text("stream webui words", stream=True)
    assert streamed == "stream webui words"
    no_key = httpx.post(url + "/lollms_generate", json={"prompt": "x"})
    assert no_key.status_code == 401


def test_split_lollms_prompt() -> None:
    messages = split_lollms_prompt(
        "!@>system: You are kind.\n!@>user: Hi\n!@>lollms: Hello!\n!@>user: And you?\n!@>lollms:"
    )
    assert [(m.role, m.content) for m in messages] == [
        ("system", "You are kind."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "And you?"),
    ]
    assert [(m.role, m.content) for m in split_lollms_prompt("no markers")] == [
        ("user", "no markers")
    ]
