"""An LLM and a diffusion pipeline share one memory budget: loading one evicts the other when
both do not fit, never past the budget, never under a running generation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.diffusers_support import build_tiny_sd, needs_diffusers
from tests.transformers_support import build_tiny_model, needs_transformers

pytestmark = [*needs_diffusers, *needs_transformers]
BUDGET = 9 * 1024 * 1024


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    llm = build_tiny_model(tmp_path / "llm", hidden_size=256)
    sd = build_tiny_sd(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(
        BASE_CONFIG.replace(
            'ttt_binding = "fake"',
            f"""ttt_binding = "llm"
ttt_model = "tiny"
tti_binding = "media"
tti_model = "sd"

[resources]
system_memory = {BUDGET}
safety_margin = 0
queue_timeout = 30

[bindings.llm]
type = "transformers"
models = {{ tiny = "{llm}" }}

[bindings.media]
type = "diffusers"
models = {{ sd = "{sd}" }}
""",
        )
    )
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=AUTH,
            timeout=60,
        ) as c,
    ):
        c.app = app  # type: ignore[attr-defined]
        yield c


def _loaded(client: httpx.AsyncClient) -> dict[str, int]:
    status = client.app.state.scheduler.status()  # type: ignore[attr-defined]
    assert status["devices"]["cpu"]["used_bytes"] <= BUDGET
    return {f"{m['binding_name']}/{m['model_name']}": m["memory_bytes"] for m in status["models"]}


async def test_llm_and_pipeline_take_turns_in_one_budget(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    llm = app.state.bindings.get("llm")
    media = app.state.bindings.get("media")
    need_llm, need_sd = llm.memory_estimate("tiny"), media.memory_estimate("sd")
    assert need_llm <= BUDGET and need_sd <= BUDGET < need_llm + need_sd

    text = await client.post(
        "/api/v1/generate", json={"prompt": "Hello", "parameters": {"max_tokens": 4}}
    )
    assert text.status_code == 200, text.text
    assert list(_loaded(client)) == ["llm/tiny"]
    image = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "a cat",
            "generation_type": "tti",
            "parameters": {"width": 64, "height": 64, "steps": 1},
        },
    )
    assert image.status_code == 200, image.text
    loaded = _loaded(client)
    assert list(loaded) == ["media/sd"]  # the idle LLM was evicted to make room
    assert loaded["media/sd"] == media.memory_used("sd")  # measured once loaded

    # A running generation is never evicted: the image request waits and times out.
    lease = await app.state.scheduler.acquire(media, "sd")
    try:
        blocked = await client.post(
            "/api/v1/generate",
            json={"prompt": "Hello", "queue_timeout": 0.3, "parameters": {"max_tokens": 2}},
        )
        assert blocked.status_code == 503
        assert blocked.json()["error"]["type"] == "queue_timeout"
        assert list(_loaded(client)) == ["media/sd"]
    finally:
        lease.release()
    again = await client.post(
        "/api/v1/generate", json={"prompt": "Hello", "parameters": {"max_tokens": 2}}
    )
    assert again.status_code == 200 and list(_loaded(client)) == ["llm/tiny"]
