"""The openai binding's error mapping against real servers (a lollms_server upstream)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from lollms_server.app import create_app
from lollms_server.bindings.events import (
    Event,
    Finished,
    TextDelta,
    ThoughtsDelta,
    ToolCall,
    Usage,
)
from lollms_server.bindings.openai import OpenAIBinding, OpenAIConfig
from lollms_server.bindings.types import (
    BindingContext,
    BindingRequest,
    MediaPart,
    Message,
    SamplingParams,
)
from lollms_server.config import load_config
from lollms_server.errors import GenerationFailed
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


# -- the relay itself: what it sends, and every kind of chunk it reads ---------------------


def _sse_body(*chunks: dict, newline: str = "\n") -> bytes:
    events = [f"data: {json.dumps(c)}{newline}{newline}" for c in chunks]
    events.insert(1, f": keep-alive comment{newline}{newline}")
    return "".join([*events, f"data: [DONE]{newline}{newline}"]).encode()


def _fragment(**delta: object) -> dict:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


STREAMED = (
    _fragment(role="assistant", content=""),
    _fragment(reasoning_content="Paris is "),
    _fragment(reasoning="the capital."),
    _fragment(content="It is "),
    _fragment(content="Paris."),
    _fragment(
        tool_calls=[{"index": 0, "id": "call_a", "function": {"name": "get_", "arguments": '{"ci'}}]
    ),
    _fragment(tool_calls=[{"index": 0, "function": {"name": "weather", "arguments": 'ty": 1}'}}]),
    _fragment(tool_calls=[{"index": 1, "function": {"name": "noop", "arguments": "{}"}}]),
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}},
)
WHOLE = {
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "It is Paris.",
                "reasoning_content": "Paris is the capital.",
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": 1}'},
                    },
                    {"id": "", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 5},
}


def _fake_openai(seen: list[dict], newline: str = "\n") -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        seen.append(
            {**body, "_auth": request.headers.get("authorization"), "_q": request.url.query}
        )
        if body["stream"]:
            return Response(_sse_body(*STREAMED, newline=newline), media_type="text/event-stream")
        return Response(json.dumps(WHOLE), media_type="application/json")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        seen.append(body)
        if body["stream"]:
            chunks = [{"choices": [{"index": 0, "text": t, "finish_reason": None}]} for t in "ab"]
            return Response(_sse_body(*chunks), media_type="text/event-stream")
        return Response(
            json.dumps({"choices": [{"index": 0, "text": "ab", "finish_reason": "length"}]}),
            media_type="application/json",
        )

    @app.post("/v1/broken/chat/completions")
    async def broken(request: Request) -> Response:
        error = {"error": {"message": f"overloaded, key {SECRET}", "type": "server_error"}}
        return Response(
            _sse_body(_fragment(content="so far"), error), media_type="text/event-stream"
        )

    return app


def _binding(base: str, **config: object) -> OpenAIBinding:
    settings = OpenAIConfig(base_url=base, api_key=SECRET, models=["m"], **config)  # type: ignore[arg-type]
    return OpenAIBinding(settings, BindingContext("relay", Path("/none")))


async def _events(binding: OpenAIBinding, request: BindingRequest) -> list[Event]:
    try:
        return [e async for e in binding.generate(request)]
    finally:
        await binding.close()


EXPECTED = [
    ThoughtsDelta("Paris is the capital."),
    TextDelta("It is Paris."),
    ToolCall("call_a", "get_weather", '{"city": 1}'),
    ToolCall("call_1", "noop", "{}"),
    Usage(7, 5),
]


def _merged(events: list[Event]) -> list[Event]:
    """Consecutive text (and thoughts) pieces joined, Finished dropped: streamed and whole
    answers compare equal."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, Finished):
            continue
        if out and type(event) in (TextDelta, ThoughtsDelta) and type(out[-1]) is type(event):
            out[-1] = type(event)(out[-1].text + event.text)  # type: ignore[union-attr]
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_the_relay_reads_thoughts_text_tool_calls_and_usage(
    stream: bool, newline: str
) -> None:
    seen: list[dict] = []
    image = MediaPart("image", b"\x89PNG", "image/png")
    request = BindingRequest(
        model="m",
        messages=(Message("user", "Where?", (image,)),),
        params=SamplingParams(temperature=0.2, top_k=3, stop=("x",)),
        extra={"presence_penalty": 0.5},
        tools=({"type": "function", "function": {"name": "get_weather"}},),
        tool_choice="auto",
        stream=stream,
    )
    with serve_in_thread(_fake_openai(seen, newline)) as base:
        events = await _events(_binding(f"{base}/v1?api-version=1"), request)
    assert _merged(events) == EXPECTED
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.finish_reason == "tool_calls"
    assert finished.metadata == {"upstream": f"{base}/v1?***"}
    sent = seen[0]
    assert sent["stream"] is stream and ("stream_options" in sent) is stream
    assert sent["top_k"] == 3 and sent["presence_penalty"] == 0.5 and sent["stop"] == ["x"]
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "auto"
    assert sent["messages"][0]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw=="},
    }
    assert sent["_auth"] == f"Bearer {SECRET}" and sent["_q"] == "api-version=1"


@pytest.mark.parametrize("stream", [True, False])
async def test_the_relay_speaks_completions_for_raw_prompts(stream: bool) -> None:
    seen: list[dict] = []
    request = BindingRequest(model="m", raw_prompt="!@>user: hi", stream=stream)
    with serve_in_thread(_fake_openai(seen)) as base:
        events = await _events(_binding(f"{base}/v1"), request)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "ab"
    assert seen[0]["prompt"] == "!@>user: hi" and "stream_options" not in seen[0]


async def test_an_error_inside_the_stream_ends_it_redacted() -> None:
    with serve_in_thread(_fake_openai([])) as base:
        binding = _binding(f"{base}/v1/broken")
        events: list[Event] = []
        with pytest.raises(GenerationFailed, match="failed mid-answer: overloaded") as info:
            async for event in binding.generate(BindingRequest(model="m")):
                events.append(event)
        await binding.close()
    assert events == [TextDelta("so far")]
    assert SECRET not in info.value.message
