"""The ollama binding against a real Ollama-API peer (lollms_server's own /api)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from lollms_server.app import create_app
from lollms_server.bindings.ollama import OllamaBinding, OllamaConfig
from lollms_server.bindings.types import BindingContext, BindingRequest, Message
from lollms_server.config import load_config
from lollms_server.errors import BindingAuthError, BindingUnavailable
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
