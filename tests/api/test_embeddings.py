"""Embeddings from a tiny BERT encoder built from a config: OpenAI /v1/embeddings (SDK,
float and base64), Ollama /api/embed and /api/embeddings (client), native /api/v1/embed."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.live import serve_in_thread
from tests.transformers_support import build_tiny_encoder, needs_transformers

pytestmark = needs_transformers
TEXTS = [
    "The capital of France is Paris.",
    "Write a story about the sea.",
    "The capital of France is Paris.",
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("emb")
    encoder = build_tiny_encoder(root / "encoder")
    path = root / "config.toml"
    path.write_text(
        BASE_CONFIG.replace(
            'ttt_binding = "fake"',
            'ttt_binding = "fake"\nembed_binding = "emb"\nembed_model = "tiny"',
        )
        + f"""
[bindings.emb]
type = "hf_embeddings"
models = {{ tiny = "{encoder}" }}
max_length = 16
"""
    )
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_openai_sdk_embeddings(live: tuple[FastAPI, str]) -> None:
    client = openai.OpenAI(base_url=live[1] + "/v1", api_key=API_KEY, max_retries=0)
    result = client.embeddings.create(model="emb/tiny", input=TEXTS)  # base64 on the wire
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2] and result.model == "emb/tiny"
    assert len(vectors[0]) == 32 and all(abs(_norm(v) - 1) < 1e-5 for v in vectors)
    assert vectors[0] == pytest.approx(vectors[2], abs=1e-6) and vectors[0] != vectors[1]
    floats = client.embeddings.create(model="default", input=TEXTS[0], encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    assert result.usage.prompt_tokens > floats.usage.prompt_tokens > 0
    with pytest.raises(openai.BadRequestError, match="32-dimensional"):
        client.embeddings.create(model="emb/tiny", input="x", dimensions=8)
    with pytest.raises(openai.BadRequestError, match="does not support generation_type"):
        client.embeddings.create(model="fake/scripted-model", input="x")


def test_ollama_client_embeddings(live: tuple[FastAPI, str]) -> None:
    client = ollama.Client(host=live[1], headers=AUTH)
    result = client.embed(model="emb/tiny", input=TEXTS[:2])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) == 32
    legacy = client.embeddings(model="emb/tiny", prompt=TEXTS[0])
    assert legacy.embedding == pytest.approx(result.embeddings[0], abs=1e-6)
    with pytest.raises(ollama.ResponseError, match="context length"):
        client.embed(model="emb/tiny", input="word " * 40, truncate=False)


def test_one_long_text_is_one_input(live: tuple[FastAPI, str]) -> None:
    """The 2048 limit counts inputs, not a text's characters (5000 here, truncated)."""
    long_text = "word " * 1000
    openai_client = openai.OpenAI(base_url=live[1] + "/v1", api_key=API_KEY, max_retries=0)
    assert len(openai_client.embeddings.create(model="emb/tiny", input=long_text).data) == 1
    ollama_client = ollama.Client(host=live[1], headers=AUTH)
    assert len(ollama_client.embed(model="emb/tiny", input=long_text).embeddings) == 1


def test_native_embed_and_status(live: tuple[FastAPI, str]) -> None:
    _, url = live
    body = httpx.post(
        url + "/api/v1/embed", headers=AUTH, json={"texts": ["a b c", "word " * 40]}
    ).json()
    assert body["dimensions"] == 32 and body["binding_name"] == "emb"
    assert body["usage"]["truncated_inputs"] == 1
    empty = httpx.post(url + "/api/v1/embed", headers=AUTH, json={"texts": []})
    assert empty.status_code == 422
    status = httpx.get(url + "/api/v1/status", headers=AUTH).json()
    models = {m["model_name"] for m in status["models"]}
    assert "tiny" in models
