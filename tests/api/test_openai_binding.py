"""The openai binding's error mapping against real servers (a lollms_server upstream)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
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
    path.write_text(
        BASE_CONFIG
        + f"""
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
"""
    )
    with serve_in_thread(create_app(load_config(path))) as url:
        yield url


def test_one_lollms_server_in_front_of_another(edge: str) -> None:
    with httpx.Client(base_url=edge, headers=AUTH, timeout=30) as client:
        models = client.get("/api/v1/list_available_models/up").json()["models"]
        assert "fake/scripted-model" in [m["name"] for m in models]
        answer = client.post(
            "/api/v1/generate",
            json={
                "prompt": "relayed twice",
                "binding_name": "up",
                "model_name": "fake/scripted-model",
            },
        )
        assert answer.json()["output"][0]["data"] == "relayed twice"
        streamed = client.post(
            "/v1/chat/completions",
            json={
                "model": "up/fake/scripted-model",
                "stream": True,
                "messages": [{"role": "user", "content": "a b c"}],
            },
        )
        assert streamed.text.count("data:") >= 5 and "[DONE]" in streamed.text
        active = client.get("/api/v1/list_active_bindings").text
        assert SECRET not in active


def test_upstream_errors_are_mapped(edge: str) -> None:
    with httpx.Client(base_url=edge, headers=AUTH, timeout=30) as client:
        refused = client.post(
            "/api/v1/generate",
            json={"prompt": "x", "binding_name": "badkey", "model_name": "fake/scripted-model"},
        )
        assert refused.status_code == 502
        assert refused.json()["error"]["type"] == "binding_auth_error"
        assert SECRET not in refused.text and "wrong" not in refused.text
        down = client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "down", "model_name": "m"}
        )
        assert down.status_code == 503
        assert down.json()["error"]["type"] == "binding_unavailable"
        assert "127.0.0.1" in down.json()["error"]["message"]
        missing = client.post(
            "/api/v1/generate",
            json={"prompt": "x", "binding_name": "up", "model_name": "fake/nope"},
        )
        assert missing.status_code == 404
        unknown = client.post(
            "/api/v1/generate",
            json={
                "prompt": "x",
                "binding_name": "up",
                "model_name": "fake/scripted-model",
                "parameters": {"mirostat": 1},
            },
        )
        assert unknown.status_code == 400


def test_upstream_overload_becomes_503_with_its_retry_after(tmp_path: Path) -> None:
    """A busy upstream (lollms_server with a full queue answers 503 + Retry-After)."""
    import threading

    busy = tmp_path / "busy.toml"
    busy.write_text(
        BASE_CONFIG.replace('ttt_binding = "fake"', 'ttt_binding = "slow"')
        + """
[resources]
max_queue = 0

[bindings.slow]
type = "scripted"
models = ["m"]
reply = "one two three four five six seven eight"
delay_s = 0.1
max_concurrency = 1
"""
    )
    with serve_in_thread(create_app(load_config(busy))) as upstream:
        edge_cfg = tmp_path / "edge.toml"
        edge_cfg.write_text(
            BASE_CONFIG
            + f"""
[bindings.up]
type = "openai"
base_url = "{upstream}/v1"
api_key = "{API_KEY}"
models = ["slow/m"]
max_retries = 0
"""
        )
        with serve_in_thread(create_app(load_config(edge_cfg))) as edge:
            hold = threading.Thread(
                target=httpx.post,
                args=(upstream + "/api/v1/generate",),
                kwargs={"json": {"prompt": "x"}, "headers": AUTH, "timeout": 30},
            )
            hold.start()
            import time

            time.sleep(0.3)  # the upstream's only slot is busy, its queue holds none
            answer = httpx.post(
                edge + "/api/v1/generate",
                headers=AUTH,
                timeout=30,
                json={"prompt": "x", "binding_name": "up", "model_name": "slow/m"},
            )
            hold.join()
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "binding_unavailable"
    assert "503" in answer.json()["error"]["message"]
    assert int(answer.headers["retry-after"]) >= 1
