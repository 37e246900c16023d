"""Lone UTF-16 surrogates in request bodies, and how the unexpected errors they used to cause
are logged.

JSON allows ``"\\ud800"`` alone; such text is not Unicode and broke every encoder after it
(tokenizers answered 500 with the traceback logged twice, llama.cpp's parser error came back
as a 502). The rule, the same on every route: a 400 naming the field (its path in the body),
found at the edge as the body is read; an unauthenticated caller still gets its 401.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from lollms_server.api.surrogates import LoneSurrogate, SurrogateScanner, lone_surrogate_path
from tests.conftest import API_KEY

JSON = {"Content-Type": "application/json"}


def assert_refused(response: httpx.Response, param: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "surrogate" in error["message"] and param in error["message"]


@pytest.mark.parametrize(
    "path", ["/api/v1/tokenize", "/api/v1/count_tokens", "/lollms/v1/tokenize"]
)
async def test_tokenizer_routes_refuse_a_lone_surrogate_naming_the_field(client, path) -> None:
    response = await client.post(path, content=b'{"text": "a \\ud800 b"}', headers=JSON)
    assert_refused(response, "text")


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/api/v1/generate", b'{"prompt": "hi \\ud83c there"}', "prompt"),
        (
            "/v1/chat/completions",
            b'{"model": "fake/scripted-model", "messages": '
            b'[{"role": "user", "content": "hi \\udc00"}]}',
            "messages.0.content",
        ),
        (
            "/api/chat",
            b'{"model": "fake/scripted-model", "stream": false, "messages": '
            b'[{"role": "user", "content": "hi"}, {"role": "user", "content": "\\ud800"}]}',
            "messages.1.content",
        ),
        ("/api/v1/generate", b'{"prompt": "x", "model_name": "\\ud800"}', "model_name"),
        ("/api/v1/generate", b'{"prompt": "raw bytes \xed\xa0\x80"}', "prompt"),  # CESU-8
    ],
)
async def test_generation_refuses_a_lone_surrogate_naming_the_field(
    client, path: str, body: bytes, param: str
) -> None:
    assert_refused(await client.post(path, content=body, headers=JSON), param)
    assert client._transport.app.state.bindings.get("fake").requests == []  # never generated


async def test_whole_characters_and_escaped_backslashes_pass(client) -> None:
    pair = await client.post(
        "/api/v1/generate", content=b'{"prompt": "hi \\ud83d\\ude00"}', headers=JSON
    )
    assert pair.status_code == 200 and pair.json()["output"][0]["data"] == "hi \U0001f600"
    literal = await client.post(
        "/api/v1/generate", content=b'{"prompt": "\\\\ud800"}', headers=JSON
    )
    assert literal.status_code == 200 and literal.json()["output"][0]["data"] == "\\ud800"


async def test_the_key_is_checked_first(make_client) -> None:
    async with make_client(auth=False) as client:
        response = await client.post("/api/v1/tokenize", content=b'{"text": "\\ud800"}')
    assert response.status_code == 401


def test_the_scanner_finds_a_surrogate_split_across_chunks() -> None:
    scanner = SurrogateScanner()
    for chunk in (b'{"a": [1, {"b": "x\\u', b"D8", b'00"}]}'):
        scanner.feed(chunk)
    with pytest.raises(LoneSurrogate) as info:
        scanner.finish()
    assert info.value.param == "a.1.b"
    assert lone_surrogate_path({"k": ["ok", {"\udc00": 1}]}) == "k.1.\ufffd"
    assert lone_surrogate_path("\ud800") == "body"
    assert lone_surrogate_path({"k": "\U0001f600"}) is None


# An unexpected error (the surrogates' 500 was one) is logged once, with its traceback, and
# without the secrets it may quote: the app's handler logged it, then uvicorn logged the same
# exception again (its own record, unfiltered) when Starlette re-raised it.
_PLUGIN = """
from lollms_server.bindings.testing import ScriptedBinding


class Boom(ScriptedBinding):
    name = "boom"

    async def tokenize(self, model, text):
        raise RuntimeError(
            "tokenizer bug at https://user:hunter2-url@upstream.example/v1 key sk-plugin-secret-1"
        )
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.e2e
def test_an_unhandled_error_is_logged_once_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "bindings").mkdir()
    (tmp_path / "bindings" / "boom.py").write_text(_PLUGIN, encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [[security.api_keys]]
            name = "tests"
            key = "{API_KEY}"
            [paths]
            bindings = "bindings"
            [bindings.b]
            type = "boom"
            api_key = "sk-plugin-secret-1"
            """
        ),
        encoding="utf-8",
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("LOLLMS_")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url, proc)
        response = httpx.post(
            f"{url}/api/v1/tokenize",
            json={"text": "x", "binding_name": "b"},
            headers={"X-API-Key": API_KEY},
            timeout=30,
        )
        time.sleep(0.5)  # uvicorn logs after the response
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert response.status_code == 500 and response.json()["error"]["type"] == "internal_error"
    assert out.count("Traceback (most recent call last)") == 1, out
    assert out.count("RuntimeError: tokenizer bug") == 1, out
    assert "POST /api/v1/tokenize" in out  # which request failed
    for secret in ("hunter2-url", "sk-plugin-secret-1", API_KEY):
        assert secret not in out


def _wait_for(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "server did not answer /health"
        time.sleep(0.05)
