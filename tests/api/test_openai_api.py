"""The OpenAI-compatible /v1 API, driven by the official openai SDK against a live server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import LLAMA_CONFIG, MODEL_NAME, needs_llama

EXTRA = """
[aliases]
"gpt-4o-mini" = "fake/other-model"

[bindings.flaky]
type = "scripted"
models = ["boom"]
reply = "a b c d"
fail_after_chunks = 2

[bindings.thinker]
type = "scripted"
models = ["scripted-model"]
reply = "<think>let me see</think>It is 4."
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    path = tmp_path_factory.mktemp("openai") / "config.toml"
    path.write_text(BASE_CONFIG + EXTRA)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url + "/v1"


@pytest.fixture
def client(live: tuple[FastAPI, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=live[1], api_key=API_KEY, max_retries=0)


def test_models_list_instance_slash_model(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert "fake/scripted-model" in ids and "fake/other-model" in ids
    assert "flaky/boom" in ids
    assert client.models.retrieve("fake/other-model").id == "fake/other-model"
    assert "gpt-4o-mini" in ids


def test_alias_and_embeddings(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "via alias"}]
    )
    assert reply.model == "fake/other-model" and reply.choices[0].message.content == "via alias"
    with pytest.raises(openai.BadRequestError, match="does not support generation_type .embed."):
        client.embeddings.create(model="fake/scripted-model", input="x")


def test_chat_completion(client: openai.OpenAI, live) -> None:
    reply = client.chat.completions.create(
        model="fake/scripted-model",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": "hello there"},
        ],
        temperature=0.3,
        max_completion_tokens=50,
        seed=4,
        stop=["zzz"],
    )
    assert reply.choices[0].message.content == "hello there"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert reply.model == "fake/scripted-model"
    request = live[0].state.bindings.get("fake").requests[-1]
    assert [m.role for m in request.messages] == ["system", "user"]
    assert request.params.temperature == 0.3 and request.params.max_tokens == 50
    assert request.params.seed == 4 and request.params.stop == ("zzz",)


def test_bare_model_name_and_ambiguity(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="other-model", messages=[{"role": "user", "content": "x y"}]
    )
    assert reply.model == "fake/other-model"
    with pytest.raises(openai.ConflictError) as info:  # served by "fake" and "thinker"
        client.chat.completions.create(
            model="scripted-model", messages=[{"role": "user", "content": "x"}]
        )
    assert "thinker/scripted-model" in str(info.value)


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake/scripted-model",
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_reasoning_is_separated(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="thinker/scripted-model", messages=[{"role": "user", "content": "2+2?"}]
    )
    message = reply.choices[0].message
    assert message.content == "It is 4."
    assert getattr(message, "reasoning_content", None) == "let me see"


def test_completions_and_stream(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model="fake/scripted-model", prompt="a b c d e", max_tokens=3, echo=False
    )
    assert reply.choices[0].text == "a b c "
    assert reply.choices[0].finish_reason == "length"
    parts = [
        c.choices[0].text
        for c in client.completions.create(model="fake/scripted-model", prompt="x y", stream=True)
        if c.choices
    ]
    assert "".join(parts) == "x y"


async def test_async_client(live) -> None:
    client = openai.AsyncOpenAI(base_url=live[1], api_key=API_KEY, max_retries=0)
    reply = await client.chat.completions.create(
        model="fake/scripted-model", messages=[{"role": "user", "content": "async works"}]
    )
    assert reply.choices[0].message.content == "async works"
    stream = await client.chat.completions.create(
        model="fake/scripted-model", messages=[{"role": "user", "content": "s t"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "s t"
    await client.close()


def test_errors_are_typed(client: openai.OpenAI, live) -> None:
    bad_key = openai.OpenAI(base_url=live[1], api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="nope/none", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="fake/scripted-model", n=9, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["param"] == "n"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="cannot call tools"):
        client.chat.completions.create(
            model="fake/scripted-model",
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        )
    with pytest.raises(openai.BadRequestError, match="cannot constrain"):
        client.chat.completions.create(
            model="fake/scripted-model",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_object"},
        )
    with pytest.raises(openai.BadRequestError) as invalid:  # OpenAI's status: 400, not 422
        client.chat.completions.create(model="fake/scripted-model", messages=[])
    assert invalid.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="one prompt"):
        client.completions.create(model="fake/scripted-model", prompt=[], echo=True)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="flaky/boom", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code == 502


def test_errors_that_would_repeat_are_not_retried(live) -> None:
    """The SDK retries 409 and 5xx by default: a failed generation ran three times."""
    retrying = openai.OpenAI(base_url=live[1], api_key=API_KEY, max_retries=2)
    flaky = live[0].state.bindings.get("flaky")
    before = len(flaky.requests)
    with pytest.raises(openai.APIStatusError) as failed:
        retrying.chat.completions.create(
            model="flaky/boom", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert len(flaky.requests) == before + 1
    with pytest.raises(openai.ConflictError) as conflict:
        retrying.chat.completions.create(
            model="scripted-model", messages=[{"role": "user", "content": "x"}]
        )
    assert conflict.value.response.headers["x-should-retry"] == "false"


def test_nulls_mean_defaults(client: openai.OpenAI) -> None:
    """Fields the SDK types as optional may arrive as null (n, stream, echo); top_p may be 0."""
    reply = client.chat.completions.create(
        model="fake/scripted-model",
        n=None,
        stream=None,
        top_p=0,
        messages=[{"role": "user", "content": "ok"}],
    )
    assert reply.choices[0].message.content == "ok"
    text = client.completions.create(
        model="fake/scripted-model", prompt="p", echo=None, n=None, stream=None
    )
    assert text.choices[0].text == "p"


def test_error_inside_a_stream_raises(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="flaky/boom", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="scripted failure"):
        for _ in stream:
            pass


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
def test_llamacpp_through_the_sdk(tmp_path: Path, mark: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + LLAMA_CONFIG)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model=f"llm/{MODEL_NAME}",
            temperature=0,
            max_tokens=30,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        assert "Paris" in (reply.choices[0].message.content or "")
        import json

        structured = client.chat.completions.create(
            model=f"llm/{MODEL_NAME}",
            temperature=0,
            max_tokens=60,
            messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "c",
                    "schema": {
                        "type": "object",
                        "properties": {"capital": {"type": "string"}},
                        "required": ["capital"],
                    },
                },
            },
        )
        assert "capital" in json.loads(structured.choices[0].message.content or "")


def test_openapi_lists_every_route(live) -> None:
    import httpx
    from openapi_spec_validator import validate

    spec = httpx.get(
        live[1].removesuffix("/v1") + "/openapi.json", headers={"X-API-Key": API_KEY}
    ).json()
    validate(spec)  # a valid OpenAPI document, as served
    documented = {route.path for route in live[0].routes if hasattr(route, "methods")}
    assert documented - {"/docs", "/docs/oauth2-redirect", "/openapi.json"} <= set(spec["paths"])
    for path in (
        "/v1/models",
        "/v1/chat/completions",
        "/v1/completions",
        "/api/v1/generate",
        "/api/v1/status",
        "/metrics",
        "/health",
        "/api/chat",
        "/lollms_generate",
    ):
        assert path in spec["paths"], path
