from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import httpx
import pytest
from httpx_sse import aconnect_sse

from tests.conftest import binding_of

REPO = Path(__file__).resolve().parents[2]


async def test_generate_non_streaming(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/generate", json={"prompt": "hello there world"})
    assert response.status_code == 200
    body = response.json()
    assert body["output"] == [
        {
            "type": "text",
            "data": "hello there world",
            "mime_type": "text/plain",
            "thoughts": None,
            "metadata": {"finish_reason": "stop"},
        }
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    assert body["binding_name"] == "fake" and body["model_name"] == "scripted-model"
    assert body["request_id"].startswith("gen-")
    assert body["timings"]["total_ms"] >= 0


async def test_streaming_sse_framing(client: httpx.AsyncClient) -> None:
    events = []
    async with aconnect_sse(
        client, "POST", "/api/v1/generate", json={"prompt": "one two three", "stream": True}
    ) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            events.append(json.loads(sse.data))
    chunks = [e["content"] for e in events if e["type"] == "chunk"]
    assert chunks == ["one ", "two ", "three"]
    assert events[-1]["type"] == "final"
    assert events[-1]["output"][0]["data"] == "one two three"
    assert events[-1]["usage"]["completion_tokens"] == 3


async def test_error_after_stream_started_is_an_event(make_client) -> None:
    extra = '[bindings.flaky]\ntype = "scripted"\nreply = "a b c d"\nfail_after_chunks = 2\n'
    events = []
    async with (
        make_client(extra) as client,
        aconnect_sse(
            client,
            "POST",
            "/api/v1/generate",
            json={"prompt": "x", "binding_name": "flaky", "stream": True},
        ) as source,
    ):
        assert source.response.status_code == 200
        async for sse in source.aiter_sse():
            events.append(json.loads(sse.data))
    assert [e["type"] for e in events] == ["chunk", "chunk", "error"]
    assert events[-1]["error"]["type"] == "generation_failed"


async def test_error_without_stream_is_envelope(make_client) -> None:
    extra = '[bindings.flaky]\ntype = "scripted"\nreply = "a b"\nfail_after_chunks = 1\n'
    async with make_client(extra) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "flaky"}
        )
        after = await client.post("/api/v1/generate", json={"prompt": "still fine"})
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "generation_failed"
    assert after.json()["output"][0]["data"] == "still fine"  # other requests undisturbed


async def test_think_tags_become_thoughts(make_client) -> None:
    extra = '[bindings.thinker]\ntype = "scripted"\nreply = "<think>hmm, 2+2</think>It is 4."\n'
    async with make_client(extra) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "2+2?", "binding_name": "thinker"}
        )
        events = []
        async with aconnect_sse(
            client,
            "POST",
            "/api/v1/generate",
            json={"prompt": "2+2?", "binding_name": "thinker", "stream": True},
        ) as source:
            async for sse in source.aiter_sse():
                events.append(json.loads(sse.data))
    item = response.json()["output"][0]
    assert item["data"] == "It is 4."
    assert item["thoughts"] == "hmm, 2+2"
    assert "".join(e["content"] for e in events if e["type"] == "thoughts") == "hmm, 2+2"
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == "It is 4."
    assert "<think>" not in json.dumps(events)


async def test_parameters_reach_the_binding(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "prompt": "a b c d e f",
            "model_name": "other-model",
            "parameters": {
                "temperature": 0.2,
                "top_p": 0.9,
                "top_k": 5,
                "repeat_penalty": 1.1,
                "max_tokens": 3,
                "seed": 7,
                "stop": ["zzz"],
                "mirostat": 2,
            },
        },
    )
    assert response.json()["output"][0]["data"] == "a b c "
    assert response.json()["output"][0]["metadata"]["finish_reason"] == "length"
    request = binding_of(client).requests[-1]
    assert request.model == "other-model"
    p = request.params
    assert (p.temperature, p.top_p, p.top_k, p.repeat_penalty, p.max_tokens, p.seed) == (
        0.2,
        0.9,
        5,
        1.1,
        3,
        7,
    )
    assert p.stop == ("zzz",)
    assert request.extra == {"mirostat": 2}


async def test_stop_sequence_and_n_predict_alias(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={"prompt": "alpha beta STOP gamma", "parameters": {"stop": "STOP", "n_predict": 10}},
    )
    assert response.json()["output"][0]["data"] == "alpha beta "
    assert binding_of(client).requests[-1].params.max_tokens == 10


async def test_input_data_multi_turn(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "input_data": [
                {"type": "text", "role": "system", "data": "Be brief."},
                {"type": "text", "role": "user", "data": "Hi"},
                {"type": "text", "role": "assistant", "data": "Hello!"},
                {"type": "text", "role": "user", "data": "How are you"},
            ]
        },
    )
    assert response.json()["output"][0]["data"] == "How are you"
    messages = binding_of(client).requests[-1].messages
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "How are you"),
    ]


async def test_image_input_refused_by_text_only_binding(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/generate",
        json={
            "input_data": [
                {"type": "text", "data": "What is this?"},
                {"type": "image", "data": "data:image/png;base64,iVBORw0KGgo="},
            ]
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "unsupported_capability"
    assert response.json()["error"]["param"] == "input_data"


@pytest.mark.parametrize(
    ("body", "status", "error_type", "needle"),
    [
        ({"prompt": "x", "binding_name": "nope"}, 404, "binding_not_found", "fake"),
        ({"prompt": "x", "model_name": "nope"}, 404, "model_not_found", "scripted-model"),
        (
            {"prompt": "x", "binding_name": "fake", "generation_type": "tti"},
            400,
            "unsupported_generation_type",
            "ttt",
        ),
        ({"prompt": "x", "generation_type": "png"}, 422, "validation_error", "generation_type"),
        (
            {"prompt": "x", "parameters": {"temperature": -1}},
            422,
            "validation_error",
            "temperature",
        ),
        ({}, 422, "validation_error", "prompt"),
        ({"prompt": "x", "personality": "nobody"}, 404, "personality_not_found", "nobody"),
        (
            {"input_data": [{"type": "image", "data": "!!notbase64"}]},
            400,
            "invalid_request_error",
            "base64",
        ),
    ],
)
async def test_bad_requests(client, body, status, error_type, needle) -> None:
    response = await client.post("/api/v1/generate", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == error_type
    assert needle in error["message"]
    assert "Traceback" not in response.text


async def test_malformed_json_and_wrong_content_type(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/api/v1/generate", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    form = await client.post("/api/v1/generate", data={"prompt": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_json"
    assert form.status_code == 415 and "application/json" in form.json()["error"]["message"]


async def test_body_limit(make_client) -> None:
    async with make_client(
        "",
        base=__import__("tests.conftest").conftest.BASE_CONFIG.replace(
            "port = 9601", "port = 9601\nmax_request_bytes = 1000"
        ),
    ) as client:
        response = await client.post("/api/v1/generate", json={"prompt": "x" * 2000})
        ok = await client.post("/api/v1/generate", json={"prompt": "small"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"
    assert ok.status_code == 200


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing_here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


async def test_list_bindings_shows_schema_and_modalities(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/list_bindings")).json()
    by_type = {b["type"]: b for b in body["bindings"]}
    llama = by_type["llamacpp"]
    assert llama["status"] == "ok" and llama["modalities"] == ["ttt"]
    assert "n_parallel" in llama["config_schema"]["properties"]
    assert llama["capabilities"]["tokenizer"] is True


async def test_list_models_and_model_info(client: httpx.AsyncClient) -> None:
    models = (await client.get("/api/v1/list_models")).json()
    assert [m["name"] for m in models["models"]["fake"]] == ["scripted-model", "other-model"]
    one = await client.get("/api/v1/list_available_models/fake")
    assert one.json()["models"][0]["name"] == "scripted-model"
    info = await client.get("/api/v1/get_model_info/fake", params={"model_name": "other-model"})
    assert info.json()["context_size"] == 4096
    missing = await client.get("/api/v1/get_model_info/fake", params={"model_name": "x"})
    assert missing.status_code == 404
    assert "scripted-model" in missing.json()["error"]["message"]
    no_instance = await client.get("/api/v1/list_available_models/ghost")
    assert no_instance.status_code == 404


async def test_tokenizer_routes(client: httpx.AsyncClient) -> None:
    tokens = (await client.post("/api/v1/tokenize", json={"text": "a b a "})).json()
    assert tokens["count"] == 3 and tokens["tokens"][0] == tokens["tokens"][2]
    text = await client.post("/api/v1/detokenize", json={"tokens": tokens["tokens"]})
    assert text.json()["text"] == "a b a "
    count = await client.post("/api/v1/count_tokens", json={"text": "x y"})
    assert count.json()["count"] == 2


async def test_concurrent_first_requests_load_once(client: httpx.AsyncClient) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(client.post("/api/v1/generate", json={"prompt": f"n{i}"}) for i in range(8))
    )
    assert [r.json()["output"][0]["data"] for r in responses] == [f"n{i}" for i in range(8)]
    assert binding_of(client).load_count == 1


SECRET = "sk-very-secret-value-42"


async def test_secrets_never_returned_or_logged(make_client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    extra = f"""
    [bindings.remote]
    type = "scripted"
    api_key = "{SECRET}"
    headers = {{ Authorization = "Bearer {SECRET}", X-Other = "visible" }}
    """
    async with make_client(extra) as client:
        texts = []
        for path in (
            "/api/v1/list_active_bindings",
            "/api/v1/list_bindings",
            "/api/v1/list_models",
            "/api/v1/list_available_models/remote",
            "/openapi.json",
        ):
            response = await client.get(path)
            assert response.status_code == 200
            texts.append(response.text)
        gen = await client.post("/api/v1/generate", json={"prompt": "hi", "binding_name": "remote"})
        texts.append(gen.text)
        active = (await client.get("/api/v1/list_active_bindings")).json()
    for text in texts:
        assert SECRET not in text
    assert SECRET not in caplog.text
    config = active["bindings"]["remote"]["config"]
    assert config["api_key"] == "***"
    # Header names stay visible; every value may be a credential (a Cookie as much as a token).
    assert config["headers"] == {"Authorization": "***", "X-Other": "***"}


async def test_url_credentials_never_returned_or_logged(make_client, caplog) -> None:
    """A base_url may carry credentials (user:password@, or Azure's ?api-key=): the upstream
    gets them, no response, error message or log line shows them."""
    caplog.set_level(logging.DEBUG)
    extra = f"""
    [bindings.up]
    type = "openai"
    base_url = "http://user:pw-{SECRET}@127.0.0.1:1/v1?api-key={SECRET}"
    models = ["gpt-x"]
    """
    async with make_client(extra) as client:
        active = await client.get("/api/v1/list_active_bindings")
        models = await client.get("/api/v1/list_available_models/up")
        gen = await client.post(
            "/api/v1/generate", json={"prompt": "hi", "binding_name": "up", "model_name": "gpt-x"}
        )
    assert active.json()["bindings"]["up"]["config"]["base_url"] == (
        "http://***@127.0.0.1:1/v1?***"
    )
    assert gen.status_code == 503 and "127.0.0.1:1" in gen.json()["error"]["message"]
    for text in (active.text, models.text, gen.text, caplog.text):
        assert SECRET not in text


async def test_drop_in_and_broken_plugins(make_client, tmp_path: Path) -> None:
    plugins = tmp_path / "bindings"
    plugins.mkdir()
    shutil.copy(REPO / "zoos/bindings/echo_binding.py", plugins / "echo_binding.py")
    (plugins / "broken.py").write_text("raise RuntimeError('plugin exploded')\n")
    extra = '[bindings.rev]\ntype = "echo"\nprefix = ">"\n'
    async with make_client(extra) as client:
        listed = (await client.get("/api/v1/list_bindings")).json()["bindings"]
        answer = await client.post(
            "/api/v1/generate", json={"prompt": "abc", "binding_name": "rev"}
        )
    by_type = {b["type"]: b for b in listed}
    assert by_type["echo"]["status"] == "ok"
    assert by_type["broken"]["status"] == "error"
    assert "plugin exploded" in by_type["broken"]["error"]
    assert answer.json()["output"][0]["data"] == ">cba"


async def test_cors_only_for_configured_origins(make_client) -> None:
    base = __import__("tests.conftest").conftest.BASE_CONFIG.replace(
        "port = 9601", 'port = 9601\ncors_origins = ["http://ui.local"]'
    )
    async with make_client(base=base) as client:
        allowed = await client.options(
            "/api/v1/generate",
            headers={"Origin": "http://ui.local", "Access-Control-Request-Method": "POST"},
        )
        denied = await client.options(
            "/api/v1/generate",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert allowed.headers["access-control-allow-origin"] == "http://ui.local"
    assert "access-control-allow-origin" not in denied.headers


async def test_body_limit_without_content_length(make_client) -> None:
    base = __import__("tests.conftest").conftest.BASE_CONFIG.replace(
        "port = 9601", "port = 9601\nmax_request_bytes = 1000"
    )

    async def chunks():  # type: ignore[no-untyped-def]
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    async with make_client(base=base) as client:
        response = await client.post(
            "/api/v1/generate", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


async def test_inputs_that_would_be_misread_are_422s(client) -> None:
    wizard = await client.post(
        "/api/v1/generate", json={"input_data": [{"type": "text", "role": "wizard", "data": "hi"}]}
    )
    assert wizard.status_code == 422 and "role" in wizard.json()["error"]["param"]
    dropped = await client.post(
        "/api/v1/generate",
        json={"prompt": "x", "raw_prompt": True, "input_data": [{"type": "text", "data": "hi"}]},
    )
    assert dropped.status_code == 422 and "dropped" in dropped.json()["error"]["message"]


async def test_lone_surrogates_are_a_400_naming_the_field(client) -> None:
    """JSON allows "\\ud83c" alone; it cannot be UTF-8: one rule at the edge, a 400 naming
    the field (never a 500, never a changed prompt), streamed or not."""
    headers = {"Content-Type": "application/json"}
    for body, param in (
        (b'{"prompt": "hi \\ud83c there"}', "prompt"),
        (b'{"prompt": "hi \\ud83c", "stream": true}', "prompt"),
        (b'{"prompt": "x", "model_name": "\\ud800"}', "model_name"),
    ):
        response = await client.post("/api/v1/generate", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


async def test_stream_whose_first_event_is_slow_still_streams(make_client, monkeypatch) -> None:
    """Past the wait for a first event the response starts; the events follow unchanged and
    the lease is released at the end, as for any stream."""
    from lollms_server.api import disconnect

    monkeypatch.setattr(disconnect, "FIRST_EVENT_WAIT", 0.01)
    extra = '[bindings.slow]\ntype = "scripted"\nreply = "one two"\ndelay_s = 0.1\n'
    async with make_client(extra) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "slow", "stream": True}
        )
        status = (await client.get("/api/v1/status")).json()
    chunks = [
        json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
    ]
    assert "".join(c.get("content", "") for c in chunks if c["type"] == "chunk") == "one two"
    assert chunks[-1]["type"] == "final" and status["active_generations"] == 0
