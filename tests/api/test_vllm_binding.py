"""The vllm binding. vLLM itself cannot run here (no GPU, no wheel for this CPU), so its HTTP
API is played by a small stand-in server on 127.0.0.1, at the HTTP level only; the binding's
real code builds and sends every request. The detection check also runs against a real
non-vLLM server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI, Request, Response

from lollms_server.app import create_app
from lollms_server.bindings.events import TextDelta, Usage
from lollms_server.bindings.types import BindingContext, BindingRequest, Message, SamplingParams
from lollms_server.bindings.vllm import VLLMBinding, VLLMConfig
from lollms_server.config import load_config
from lollms_server.errors import BadRequest, BindingUnavailable
from lollms_server.generation.service import check_capabilities
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread


def _sse(*chunks: dict) -> bytes:
    return (
        b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
    )


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> dict:
    choices = (
        [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    )
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "qwen",
        "choices": choices,
        **({"usage": usage} if usage else {}),
    }


def _fake_vllm(seen: list[tuple[dict, str]]) -> FastAPI:
    app = FastAPI()

    @app.get("/version")
    async def version() -> dict:
        return {"version": "0.11.0"}

    @app.get("/v1/models")
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": "qwen", "object": "model", "created": 0, "owned_by": "vllm"}],
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        seen.append((await request.json(), request.headers.get("authorization", "")))
        return Response(
            _sse(
                _chunk('{"a":'),
                _chunk(" 1}", "stop"),
                _chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}),
            ),
            media_type="text/event-stream",
        )

    return app


async def test_vllm_extras_reach_the_server() -> None:
    seen: list[tuple[dict, str]] = []
    with serve_in_thread(_fake_vllm(seen)) as base:
        await _exercise(base, seen)
    assert len(seen) == 1  # exactly one chat request reached the stand-in server


async def _exercise(base: str, seen: list[tuple[dict, str]]) -> None:
    binding = VLLMBinding(
        VLLMConfig(base_url=f"{base}/v1", api_key="k", chat_template_kwargs={"foo": 1}),
        BindingContext("v", Path("/n")),
    )
    models = await binding.list_models()
    assert models[0].name == "qwen" and models[0].details["vllm_version"] == "0.11.0"
    request = BindingRequest(
        model="qwen",
        messages=(Message("user", "json please"),),
        params=SamplingParams(temperature=0.1, top_k=5, repeat_penalty=1.2, max_tokens=9),
        extra={"guided_json": {"type": "object"}, "enable_thinking": False},
        tools=({"type": "function", "function": {"name": "f"}},),
        tool_choice="auto",
    )
    binding.check_request(request)
    events = [e async for e in binding.generate(request)]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"a": 1}'
    assert [e for e in events if isinstance(e, Usage)][0].completion_tokens == 2
    sent, authorization = seen[-1]
    assert sent["guided_json"] == {"type": "object"}
    assert sent["chat_template_kwargs"] == {"foo": 1, "enable_thinking": False}
    assert sent["top_k"] == 5 and sent["repetition_penalty"] == 1.2
    assert sent["max_tokens"] == 9 and sent["stream"] is True
    assert sent["tools"][0]["function"]["name"] == "f" and sent["tool_choice"] == "auto"
    assert authorization == "Bearer k"
    assert not binding.accepts_parameter("warp")
    with pytest.raises(BadRequest):
        check_capabilities(binding, BindingRequest(model="qwen", extra={"warp": 1}))
    await binding.close()


async def test_a_server_that_is_not_vllm_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(BASE_CONFIG)
    with serve_in_thread(create_app(load_config(tmp_path / "config.toml"))) as url:
        binding = VLLMBinding(
            VLLMConfig(base_url=url + "/v1", api_key=API_KEY), BindingContext("v", tmp_path)
        )
        with pytest.raises(BindingUnavailable, match="does not answer GET /version like vLLM"):
            await binding.list_models()
