"""Zoo-style processors on the real llama.cpp engine with SmolLM2: the client's limits bound
what they generate, and a prompt beyond the model's context is cut to fit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.api.test_zoo_processors import zoo_personality
from tests.conftest import AUTH, BASE_CONFIG
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, needs_llama

pytestmark = [*needs_llama, pytest.mark.slow]

CHATTY = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        self.step_start("Writing")
        story = self.fast_gen(previous_discussion_text + "Once upon a time", 700)
        self.step_end("Writing")
        more = self.generate("!@>user:\\nCount from one to fifty.\\n!@>assistant:\\n", 700,
                             temperature=0.9)
        self.set_message_content(story + more)
"""
HUGE_DOCUMENT = """
from lollms.personality import APScript


class Processor(APScript):
    def __init__(self, personality, callback=None):
        super().__init__(personality, None, callback=callback)

    def run_workflow(self, prompt, previous_discussion_text, callback, context_details, client):
        ctx = self.personality.config["ctx_size"]
        document = "The sky is blue. " * 1500  # 7500 tokens, for a 512-token context
        full = (f"!@>system:\\nAnswer from the document.\\n!@>documentation:\\n{document}\\n"
                f"!@>user:\\n{prompt}\\n!@>assistant:\\n")
        self.step_start(f"Reading ({ctx} tokens of context)")
        answer = self.fast_gen(full, 24)
        self.step_end(f"Reading ({ctx} tokens of context)")
        self.set_message_content(answer)
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    root = tmp_path / "personalities"
    zoo_personality(root, "chatty", CHATTY, "model_temperature: 0.9\n")
    zoo_personality(root, "huge_document", HUGE_DOCUMENT)
    base = BASE_CONFIG.replace('[defaults]\nttt_binding = "fake"\n', "")
    path = tmp_path / "config.toml"
    small = LLAMA_CONFIG.replace("n_ctx = 2048", "n_ctx = 512")  # short prompts: a fast test
    assert small != LLAMA_CONFIG
    path.write_text(base + small + LLAMA_DEFAULTS + f'[paths]\npersonalities = "{root}"\n')
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            headers=AUTH,
            timeout=120,
        ) as c,
    ):
        yield c


async def test_max_tokens_bounds_each_generation_of_a_processor(
    client: httpx.AsyncClient,
) -> None:
    body = (
        await client.post(
            "/api/v1/generate",
            json={
                "prompt": "Tell me a story.",
                "personality": "chatty",
                "parameters": {"max_tokens": 12, "temperature": 0},
            },
        )
    ).json()
    assert 2 <= body["usage"]["completion_tokens"] <= 2 * 12  # two generations of 12 at most
    assert body["output"][0]["data"].strip()


async def test_a_document_beyond_the_context_is_cut_to_fit(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "What colour is the sky?",
            "personality": "huge_document",
            "parameters": {"temperature": 0},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["steps"][0]["text"] == "Reading (512 tokens of context)"
    assert body["steps"][-1]["ok"] is True
    assert body["output"][0]["data"].strip()
    assert body["usage"]["prompt_tokens"] <= 512 - 24
