"""The native API in front of the real llama.cpp engine and the embedded SmolLM2 model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from httpx_sse import aconnect_sse

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, MODEL_NAME, needs_llama

pytestmark = [*needs_llama, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def llama_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    path = tmp_path_factory.mktemp("llama") / "config.toml"
    base = BASE_CONFIG.replace('[defaults]\nttt_binding = "fake"\n', "")
    path.write_text(base + LLAMA_CONFIG + LLAMA_DEFAULTS)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


@pytest_asyncio.fixture(loop_scope="module")
async def llama_client(llama_app: tuple[FastAPI, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=llama_app[1], headers=AUTH, timeout=120) as client:
        client.app = llama_app[0]  # type: ignore[attr-defined]
        yield client


@asynccontextmanager
async def _engine(client: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """The engine behind the app, and a client of llama.cpp's own (key-locked) endpoint."""
    engine = client.app.state.bindings.get("llm")._engines[MODEL_NAME]  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        base_url=str(engine.http.base_url), headers=dict(engine.http.headers)
    ) as raw:
        yield engine, raw


async def test_answers_capital_of_france_with_paris(llama_client: httpx.AsyncClient) -> None:
    response = await llama_client.post(
        "/api/v1/generate",
        json={
            "prompt": "What is the capital of France?",
            "parameters": {"temperature": 0, "top_k": 1, "max_tokens": 40},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Paris" in body["output"][0]["data"]
    assert body["model_name"] == MODEL_NAME and body["binding_name"] == "llm"
    assert body["usage"]["completion_tokens"] > 0
    assert body["timings"]["first_token_ms"] is not None


async def test_streams_token_by_token_over_sse(llama_client: httpx.AsyncClient) -> None:
    events = []
    async with aconnect_sse(
        llama_client,
        "POST",
        "/api/v1/generate",
        json={
            "prompt": "What is the capital of France?",
            "stream": True,
            "parameters": {"temperature": 0, "top_k": 1, "max_tokens": 40},
        },
    ) as source:
        async for sse in source.aiter_sse():
            events.append(json.loads(sse.data))
    chunks = [e["content"] for e in events if e["type"] == "chunk"]
    final = events[-1]
    assert final["type"] == "final"
    assert len(chunks) >= 3  # one event per token, not one blob
    assert "".join(chunks) == final["output"][0]["data"]
    assert "Paris" in final["output"][0]["data"]


async def test_tokenizer_and_model_info(llama_client: httpx.AsyncClient) -> None:
    tokens = (await llama_client.post("/api/v1/tokenize", json={"text": "Hello world"})).json()
    assert tokens["count"] == len(tokens["tokens"]) >= 2
    text = await llama_client.post("/api/v1/detokenize", json={"tokens": tokens["tokens"]})
    assert text.json()["text"] == "Hello world"
    info = (
        await llama_client.get("/api/v1/get_model_info/llm", params={"model_name": MODEL_NAME})
    ).json()
    assert info["context_size"] == 2048
    assert info["loaded"] is True
    assert "im_start" in info["details"]["chat_template"]


async def test_context_overflow_is_a_clear_400(llama_client: httpx.AsyncClient) -> None:
    for stream in (False, True):  # streamed too: a 400, not a 200 holding an error event
        response = await llama_client.post(
            "/api/v1/generate",
            json={"prompt": "word " * 3000, "parameters": {"max_tokens": 4}, "stream": stream},
        )
        assert response.status_code == 400, (stream, response.text)
        assert "context" in response.json()["error"]["message"]
    openai_stream = await llama_client.post(
        "/v1/chat/completions",
        json={
            "model": "default",
            "stream": True,
            "max_tokens": 4,
            "messages": [{"role": "user", "content": "word " * 3000}],
        },
    )
    assert openai_stream.status_code == 400 and "context" in openai_stream.text


async def test_concurrent_requests_share_parallel_slots(llama_client: httpx.AsyncClient) -> None:
    """Four requests at once are decoded together in llama.cpp's slots, not one by one."""
    busy_peak = 0
    done = asyncio.Event()

    await llama_client.post(
        "/api/v1/generate", json={"prompt": "hi", "parameters": {"max_tokens": 1}}
    )

    async def watch() -> None:
        nonlocal busy_peak
        async with _engine(llama_client) as (_, raw):
            while not done.is_set():
                slots = (await raw.get("/slots")).json()
                busy_peak = max(busy_peak, sum(1 for s in slots if s.get("is_processing")))
                await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    body = {
        "prompt": "Tell me a long story about a dragon.",
        "parameters": {"max_tokens": 48, "temperature": 0.7, "seed": 3},
    }
    responses = await asyncio.gather(
        *(llama_client.post("/api/v1/generate", json=body) for _ in range(4))
    )
    done.set()
    await watcher
    assert all(r.status_code == 200 for r in responses)
    assert busy_peak >= 3


async def test_cancelled_requests_leave_no_lease_and_an_idle_engine(
    llama_client: httpx.AsyncClient,
) -> None:
    app = llama_client.app  # type: ignore[attr-defined]
    body = {
        "prompt": "Write a very long essay about the sea.",
        "parameters": {"max_tokens": 1500, "ignore_eos": True},
    }  # never ends early
    for i in range(4):
        if i % 2 == 0:  # streaming: hang up after the first chunk
            async with aconnect_sse(
                llama_client, "POST", "/api/v1/generate", json={**body, "stream": True}
            ) as source:
                async for sse in source.aiter_sse():
                    if json.loads(sse.data)["type"] == "chunk":
                        break
        else:  # not streaming: give up waiting
            with pytest.raises(httpx.ReadTimeout):
                await llama_client.post("/api/v1/generate", json=body, timeout=0.5)
    async with _engine(llama_client) as (engine, raw):
        for _ in range(500):
            slots = (await raw.get("/slots")).json()
            if engine.active == 0 and not any(s.get("is_processing") for s in slots):
                break
            await asyncio.sleep(0.02)
    assert engine.active == 0
    assert slots and not any(s.get("is_processing") for s in slots)
    assert app.state.scheduler.active_leases() == 0


async def test_llama_extra_parameters_checked_and_passed(llama_client: httpx.AsyncClient) -> None:
    bad = await llama_client.post(
        "/api/v1/generate", json={"prompt": "hi", "stream": True, "parameters": {"warp_factor": 9}}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "parameters.warp_factor"
    forced = await llama_client.post(
        "/api/v1/generate",
        json={"prompt": "Say OK.", "parameters": {"max_tokens": 40, "ignore_eos": True}},
    )
    assert forced.json()["usage"]["completion_tokens"] == 40


async def test_engine_refusals_are_400s_without_internals(llama_client: httpx.AsyncClient) -> None:
    schema = await llama_client.post(
        "/api/v1/generate",
        json={"prompt": "hi", "parameters": {"max_tokens": 4, "json_schema": {"type": "nonsense"}}},
    )
    assert schema.status_code == 400, schema.text
    ids = await llama_client.post("/api/v1/detokenize", json={"tokens": [-1, 99999999]})
    assert ids.status_code == 400 and ids.json()["error"]["param"] == "tokens"
    assert "127.0.0.1" not in ids.text  # the engine's private endpoint is not shown


async def test_out_of_range_parameters_are_422s(llama_client: httpx.AsyncClient) -> None:
    for parameters in (
        {"max_tokens": 2**32 + 2},
        {"top_k": 2**32 + 1},
        {"seed": 2**64 - 1},
        {"repeat_penalty": 1e308 * 10},
        {"min_p": float("nan")},
    ):
        response = await llama_client.post(
            "/api/v1/generate",
            content=json.dumps({"prompt": "hi", "parameters": parameters}),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 422, (parameters, response.text)


async def test_a_model_file_that_cannot_load_is_a_final_error(tmp_path) -> None:
    """A corrupt GGUF: a clear 500 that clients should not retry, not a retryable 503."""
    (tmp_path / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    path = tmp_path / "config.toml"
    path.write_text(
        BASE_CONFIG + f'\n[bindings.files]\ntype = "llamacpp"\n'
        f'include_embedded = false\nmodels_folder = "{tmp_path}"\n'
    )
    app = create_app(load_config(path))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=AUTH
        ) as c,
    ):
        response = await c.post(
            "/api/v1/generate",
            json={"prompt": "hi", "binding_name": "files", "model_name": "broken"},
        )
        again = await c.post(
            "/api/v1/generate",
            json={"prompt": "hi", "binding_name": "files", "model_name": "broken"},
        )
    for r in (response, again):  # and the next request tries again (nothing stuck)
        assert r.status_code == 500, r.text
        assert r.json()["error"]["type"] == "model_load_failed"
        assert "retry-after" not in r.headers and r.headers["x-should-retry"] == "false"
