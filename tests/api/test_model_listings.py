"""Model listings as clients read them: /v1/models entries with their generation type,
context length and the model files' time (and ?type=), Ollama's /api/tags, /api/show,
/api/ps and /api/version, and GET / HEAD / (Ollama clients ping the root). The openai SDK
and the ollama client against a live server with a scripted binding and a tiny encoder."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
import ollama
import openai
import pytest
from fastapi import FastAPI

from lollms_server import __version__
from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.live import serve_in_thread
from tests.transformers_support import build_tiny_encoder, needs_transformers

pytestmark = needs_transformers
WRITTEN = 1_600_000_000  # the encoder folder's time, set by the fixture


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    root = tmp_path_factory.mktemp("listings")
    encoder = build_tiny_encoder(root / "encoder")
    os.utime(encoder, (WRITTEN, WRITTEN))
    path = root / "config.toml"
    path.write_text(
        BASE_CONFIG.replace('ttt_binding = "fake"', 'ttt_binding = "fake"\nembed_binding = "emb"')
        + f"""
[resources]
keep_alive = 300

[aliases]
"my-chat" = "fake/other-model"
"my-vectors" = "emb/tiny"

[bindings.emb]
type = "hf_embeddings"
models = {{ tiny = "{encoder}" }}
max_length = 16
"""
    )
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest.fixture
def sdk(live: tuple[FastAPI, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=live[1] + "/v1", api_key=API_KEY, max_retries=0)


def _entries(sdk: openai.OpenAI, **query: str) -> dict[str, dict[str, object]]:
    listed = sdk.models.list(extra_query=query)
    return {m.id: m.model_dump() for m in listed}


def test_v1_models_entries(sdk: openai.OpenAI) -> None:
    entries = _entries(sdk)
    chat, vectors = entries["fake/scripted-model"], entries["emb/tiny"]
    assert (chat["type"], chat["types"], chat["context_length"]) == ("ttt", ["ttt"], 4096)
    assert (vectors["type"], vectors["context_length"]) == ("embed", 16)
    assert vectors["created"] == WRITTEN  # the model files' time
    assert 0 < int(str(chat["created"])) <= time.time()  # no files: when the server started
    assert entries["my-vectors"]["type"] == "embed" and entries["my-chat"]["type"] == "ttt"
    assert entries["my-vectors"]["owned_by"] == "emb/tiny"
    one = sdk.models.retrieve("emb/tiny").model_dump()
    assert (one["type"], one["created"]) == ("embed", WRITTEN)


def test_v1_models_filtered_by_type(sdk: openai.OpenAI) -> None:
    for query in ("embed", "embedding", "embeddings"):
        assert set(_entries(sdk, type=query)) == {"emb/tiny", "my-vectors"}
    chat = set(_entries(sdk, type="chat"))
    assert {"fake/scripted-model", "fake/other-model", "my-chat"} <= chat
    assert "emb/tiny" not in chat and "my-vectors" not in chat
    assert _entries(sdk, type="tts") == {}
    with pytest.raises(openai.BadRequestError, match="Unknown model type") as info:
        sdk.models.list(extra_query={"type": "nonsense"})
    assert info.value.body["param"] == "type"  # type: ignore[index]


def test_ollama_tags_and_show(live: tuple[FastAPI, str]) -> None:
    client = ollama.Client(host=live[1], headers=AUTH)
    tags = {m.model: m for m in client.list().models}
    vectors, chat = tags["emb/tiny"], tags["fake/scripted-model"]
    assert vectors.modified_at is not None and vectors.modified_at.timestamp() == WRITTEN
    assert vectors.digest and len(vectors.digest) == 64 and vectors.digest != chat.digest
    assert client.list().models[0].digest == next(iter(tags.values())).digest  # stable
    assert vectors.details is not None and vectors.details.family == "hf_embeddings"
    shown = client.show("fake/scripted-model")
    info = shown.modelinfo or {}
    arch = info["general.architecture"]
    assert arch == "scripted" and info[f"{arch}.context_length"] == 4096
    assert shown.modified_at is not None


def test_ollama_ps_counts_from_the_last_use(live: tuple[FastAPI, str]) -> None:
    client = ollama.Client(host=live[1], headers=AUTH)
    client.generate(model="fake/scripted-model", prompt="hi")
    time.sleep(1.5)
    loaded = {m.model: m for m in client.ps().models}
    expires = loaded["fake/scripted-model"].expires_at
    assert expires is not None
    left = (expires - datetime.now(expires.tzinfo)).total_seconds()
    assert 290 < left < 299  # keep_alive 300 counted from the request, not from now


def test_ollama_version_and_root(live: tuple[FastAPI, str]) -> None:
    version = httpx.get(live[1] + "/api/version", headers=AUTH).json()
    assert version["version"] == "0.12.0" and version["lollms_server_version"] == __version__
    assert httpx.get(live[1] + "/").status_code == 200
    assert httpx.head(live[1] + "/").status_code == 200
