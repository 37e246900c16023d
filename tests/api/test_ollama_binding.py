"""The ollama binding against a real Ollama-API peer (lollms_server's own /api)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from lollms_server.app import create_app
from lollms_server.bindings.events import Finished, TextDelta, ToolCall
from lollms_server.bindings.ollama import OllamaBinding, OllamaConfig
from lollms_server.bindings.types import BindingContext, BindingRequest, Message
from lollms_server.config import load_config
from lollms_server.errors import BadRequest, BindingAuthError, BindingUnavailable
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread


def _binding(host: str, key: str | None = API_KEY) -> OllamaBinding:
    return OllamaBinding(OllamaConfig(host=host, api_key=key), BindingContext("o", Path("/n")))


async def test_keep_alive_passes_through_and_errors_map(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(BASE_CONFIG)
    app = create_app(load_config(tmp_path / "config.toml"))
    with serve_in_thread(app) as url:
        binding = _binding(url)
        request = BindingRequest(
            model="fake/other-model", messages=(Message("user", "hi"),), keep_alive=0
        )
        events = [e async for e in binding.generate(request)]
        assert events[0].text == "hi"  # type: ignore[union-attr]
        for _ in range(50):  # upstream unloads at once: keep_alive 0 reached it
            if not app.state.scheduler.loaded():
                break
            await asyncio.sleep(0.02)
        assert not app.state.scheduler.loaded()
        with pytest.raises(BindingAuthError):
            await _binding(url, "wrong").list_models()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BindingUnavailable, match="127.0.0.1"):
        await _binding(f"http://127.0.0.1:{port}").list_models()


WEATHER = {
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


async def test_tools_round_trip_through_a_real_ollama_peer(tmp_path: Path) -> None:
    """Client tools go to Ollama's tool calling and its calls come back as ToolCall events;
    the follow-up carries the call (arguments as an object) and the result by tool_name."""
    (tmp_path / "config.toml").write_text(
        BASE_CONFIG + '[bindings.tools]\ntype = "scripted_tools"\n'
    )
    app = create_app(load_config(tmp_path / "config.toml"))
    assert OllamaBinding.capabilities.tools
    with serve_in_thread(app) as url:
        binding = _binding(url)
        ask = (Message("user", "Weather in Paris?"),)
        request = BindingRequest(model="tools/scripted-model", messages=ask, tools=(WEATHER,))
        events = [e async for e in binding.generate(request)]
        calls = [e for e in events if isinstance(e, ToolCall)]
        assert [c.name for c in calls] == ["get_weather"]
        assert json.loads(calls[0].arguments) == {"city": "Paris"}
        assert isinstance(events[-1], Finished) and events[-1].finish_reason == "tool_calls"
        call = {
            "id": calls[0].id,
            "type": "function",
            "function": {"name": "get_weather", "arguments": calls[0].arguments},
        }
        followup = (
            *ask,
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "sunny, 21 C", tool_call_id=calls[0].id),
        )
        answer = [
            e
            async for e in binding.generate(
                BindingRequest(model="tools/scripted-model", messages=followup, tools=(WEATHER,))
            )
        ]
        assert "".join(e.text for e in answer if isinstance(e, TextDelta)) == (
            "The tool said: sunny, 21 C"
        )
        seen = app.state.bindings.get("tools").requests[-1].messages
        assert seen[1].tool_calls[0]["function"]["name"] == "get_weather"
        assert json.loads(seen[1].tool_calls[0]["function"]["arguments"]) == {"city": "Paris"}
        assert seen[2].role == "tool" and seen[2].content == "sunny, 21 C"
        none = BindingRequest(
            model="tools/scripted-model", messages=ask, tools=(WEATHER,), tool_choice="none"
        )
        plain = [e async for e in binding.generate(none)]
        assert not any(isinstance(e, ToolCall) for e in plain)
        with pytest.raises(BadRequest, match="not a tool"):
            named = {"type": "function", "function": {"name": "nope"}}
            request = BindingRequest(
                model="tools/scripted-model", messages=ask, tools=(WEATHER,), tool_choice=named
            )
            [e async for e in binding.generate(request)]
