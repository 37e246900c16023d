"""The openai binding's error mapping against real servers (a lollms_server upstream)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.live import serve_in_thread

SECRET = "sk-upstream-secret-123"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("up") / "config.toml"
    path.write_text(BASE_CONFIG + f'[[security.api_keys]]\nname = "edge"\nkey = "{SECRET}"\n')
    with serve_in_thread(create_app(load_config(path))) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def edge(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    dead = f"http://127.0.0.1:{_free_port()}/v1"
    path = tmp_path_factory.mktemp("edge") / "config.toml"
    path.write_text(BASE_CONFIG + f"""
[bindings.up]
type = "openai"
base_url = "{upstream}/v1"
api_key = "{SECRET}"

[bindings.badkey]
type = "openai"
base_url = "{upstream}/v1"
api_key = "wrong"
models = ["fake/scripted-model"]

[bindings.down]
type = "openai"
base_url = "{dead}"
models = ["m"]
""")
    with serve_in_thread(create_app(load_config(path))) as url:
        yield url


def test_one_lollms_server_in_front_of_another(edge: str) -> None:
    with httpx.Client(base_url=edge, headers=AUTH, timeout=30) as client:
        models = client.get("/api/v1/list_available_models/up").json()["models"]
        assert "fake/scripted-model" in [m["name"] for m in models]
        answer = client.post("/api/v1/generate", json={
            "prompt": "relayed twice", "binding_name": "up", "model_name": "fake/scripted-model"})
        assert answer.json()["output"][0]["data"] == "relayed twice"
        streamed = client.post("/v1/chat/completions", json={
            "model": "up/fake/scripted-model", "stream": True,
            "messages": [{"role": "user", "content": "a b c"}]})
        assert streamed.text.count("data:") >= 5 and "[DONE]" in streamed.text
        active = client.get("/api/v1/list_active_bindings").text
        assert SECRET not in active


def test_upstream_errors_are_mapped(edge: str) -> None:
    with httpx.Client(base_url=edge, headers=AUTH, timeout=30) as client:
        refused = client.post("/api/v1/generate", json={
            "prompt": "x", "binding_name": "badkey", "model_name": "fake/scripted-model"})
        assert refused.status_code == 502
        assert refused.json()["error"]["type"] == "binding_auth_error"
        assert SECRET not in refused.text and "wrong" not in refused.text
        down = client.post("/api/v1/generate", json={
            "prompt": "x", "binding_name": "down", "model_name": "m"})
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "binding_unavailable"
        assert "127.0.0.1" in down.json()["error"]["message"]
        missing = client.post("/api/v1/generate", json={
            "prompt": "x", "binding_name": "up", "model_name": "fake/nope"})
        assert missing.status_code == 404
        unknown = client.post("/api/v1/generate", json={
            "prompt": "x", "binding_name": "up", "model_name": "fake/scripted-model",
            "parameters": {"mirostat": 1}})
        assert unknown.status_code == 400
