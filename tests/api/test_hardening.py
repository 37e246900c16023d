"""Fixes from a security review: request parameters that scale an engine's work are bounded
(clear 400s, before any engine runs), upstream errors never carry the binding's secrets,
ambiguous upstream credentials are refused at start-up, and a personality logo is checked
for containment each time it is served."""

from __future__ import annotations

import base64
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from lollms_server.app import build_registry
from lollms_server.bindings.llamacpp import LlamaCppBinding
from lollms_server.bindings.manager import BindingManager
from lollms_server.bindings.musicgen import MusicGenConfig
from lollms_server.bindings.types import BindingRequest, Message, SamplingParams
from lollms_server.config import Settings
from lollms_server.errors import ConfigError
from lollms_server.security.redact import REDACTED, Redactor, header_secrets, url_secrets
from tests.conftest import binding_of
from tests.live import serve_in_thread

MakeClient = Callable[..., httpx.AsyncClient]


def _assert_clean_400(response: httpx.Response, param: str, needle: str) -> None:
    """A 400 in the server's envelope, naming the parameter and the limit; no internals."""
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    assert needle in error["message"], error
    assert "Traceback" not in response.text and ".py" not in response.text


# -- 1. parameters that scale an engine's work ----------------------------------------------


@pytest.fixture
def llama_extra(tmp_path: Path) -> str:
    """A llama.cpp instance whose model is a placeholder file: every refusal below happens
    before loading, so no engine (and no real model) is needed."""
    (tmp_path / "tiny.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    return f"""
    [bindings.llm]
    type = "llamacpp"
    include_embedded = false
    models = {{ tiny = "{tmp_path / "tiny.gguf"}" }}
    n_ctx = 2048
    """


def _alternatives(count: int) -> str:
    return "root ::= " + " | ".join(f'"w{i}"' for i in range(count))


@pytest.mark.parametrize(
    ("parameters", "param", "needle"),
    [
        ({"n_probs": 100000}, "n_probs", "returns no token probabilities"),
        ({"n_probs": 5}, "n_probs", "only 0 is accepted"),
        ({"max_tokens": 2049}, "max_tokens", "at most 2048 here (n_ctx"),
        ({"repeat_last_n": 2**31 - 1}, "repeat_last_n", "between -1 (the whole context) and 2048"),
        ({"dry_penalty_last_n": 10**9}, "dry_penalty_last_n", "and 2048 (n_ctx)"),
        ({"n_keep": 4096}, "n_keep", "and 2048 (n_ctx)"),
        ({"repeat_last_n": "all"}, "repeat_last_n", "must be an integer"),
        ({"logit_bias": [[i, -1.0] for i in range(301)]}, "logit_bias", "at most 300"),
        ({"stop": [f"s{i}" for i in range(65)]}, "stop", "at most 64"),
        ({"stop": ["x" * 1025]}, "stop", "at most 1024 characters"),
        ({"grammar": _alternatives(300)}, "grammar", "at most 256 here (max_grammar_alt"),
        (
            {"json_schema": {"enum": [f"v{i}" for i in range(1000)]}},
            "json_schema",
            "has 1000 alternatives",
        ),
        (
            {"json_schema": {"type": "string", "description": "x" * 40000}},
            "json_schema",
            "at most 32768 here (max_grammar_chars)",
        ),
    ],
)
async def test_llamacpp_parameters_that_scale_work_are_bounded(
    make_client: MakeClient,
    llama_extra: str,
    parameters: dict[str, Any],
    param: str,
    needle: str,
) -> None:
    body = {"prompt": "hi", "binding_name": "llm", "model_name": "tiny", "parameters": parameters}
    async with make_client(llama_extra) as client:
        response = await client.post("/api/v1/generate", json=body)
    _assert_clean_400(response, f"parameters.{param}", needle)


async def test_llamacpp_limits_through_the_openai_api(
    make_client: MakeClient, llama_extra: str
) -> None:
    async with make_client(llama_extra) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "llm/tiny",
                "max_tokens": 100000,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
    _assert_clean_400(response, "parameters.max_tokens", "at most 2048")


async def test_llamacpp_values_within_the_limits_pass(
    make_client: MakeClient, llama_extra: str
) -> None:
    """The boundaries themselves are accepted (checked on the real binding, no engine)."""
    async with make_client(llama_extra) as client:
        binding = binding_of(client, "llm")
    assert isinstance(binding, LlamaCppBinding)
    accepted: list[dict[str, Any]] = [
        {"n_probs": 0},
        {"repeat_last_n": -1, "dry_penalty_last_n": 2048, "n_keep": 2048},
        {"repeat_last_n": 64.0},
        {"logit_bias": [[i, -1.0] for i in range(300)]},
        {"grammar": _alternatives(257)},  # 256 '|'
    ]
    schema = {"type": "object", "properties": {"a": {"enum": ["x", "y"]}}}
    for extra in [*accepted, {}]:
        binding.check_request(
            BindingRequest(
                model="tiny",
                messages=(Message("user", "hi"),),
                params=SamplingParams(max_tokens=2048, stop=tuple(f"s{i}" for i in range(64))),
                extra=extra,
                json_schema=None if extra else schema,
            )
        )
    for name in ("n_probs", "grammar", "logit_bias", "repeat_last_n"):
        assert binding.accepts_parameter(name), name


@pytest.fixture
def media_extra(tmp_path: Path) -> str:
    """Diffusers, MusicGen and piper instances on placeholder files: the limits refuse before
    anything loads."""
    sd = tmp_path / "sd"
    sd.mkdir()
    (sd / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    music = tmp_path / "music"
    music.mkdir()
    (music / "config.json").write_text("{}")
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "v.onnx").write_bytes(b"\0")
    (voices / "v.onnx.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}))
    return f"""
    [bindings.media]
    type = "diffusers"
    models = {{ sd = "{sd}" }}
    max_megapixel_steps = 3000

    [bindings.music]
    type = "musicgen"
    models = {{ small = "{music}" }}

    [bindings.speech]
    type = "piper"
    include_embedded = false
    voices_folder = "{voices}"
    """


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        (
            {"generation_type": "tti", "binding_name": "media", "parameters": {"steps": 500}},
            "parameters.steps",
            "at most 100 here (max_steps)",
        ),
        (
            {"generation_type": "tti", "binding_name": "media", "parameters": {"width": 8192}},
            "parameters.width",
            "8192x8192 is more than this instance's max_pixels",
        ),
        (
            {"generation_type": "tti", "binding_name": "media", "parameters": {"height": 4096}},
            "parameters.height",
            "max_pixels (4194304)",
        ),
        (  # each within its own cap, together too much work: 2048x2048 x 100 steps x 8
            {
                "generation_type": "tti",
                "binding_name": "media",
                "parameters": {"width": 2048, "height": 2048, "steps": 100, "n": 8},
            },
            "parameters.steps",
            "over this instance's max_megapixel_steps (3000)",
        ),
        (
            {"generation_type": "ttm", "binding_name": "music", "prompt": "piano " * 500},
            "prompt",
            "at most 2000 characters here (max_prompt_chars)",
        ),
        (
            {"generation_type": "ttm", "binding_name": "music", "parameters": {"duration": 90}},
            "parameters.duration",
            "at most 60 s here (max_duration)",
        ),
        (
            {"generation_type": "tts", "binding_name": "speech", "prompt": "word " * 1000},
            "input",
            "5000 characters; at most 4096 here (max_text_chars)",
        ),
    ],
)
async def test_media_parameters_that_scale_work_are_bounded(
    make_client: MakeClient, media_extra: str, body: dict[str, Any], param: str, needle: str
) -> None:
    async with make_client(media_extra) as client:
        response = await client.post("/api/v1/generate", json={"prompt": "x", **body})
    _assert_clean_400(response, param, needle)


def test_musicgen_default_duration_cannot_exceed_its_maximum() -> None:
    with pytest.raises(ValueError, match="default_duration"):
        MusicGenConfig(default_duration=90)
    assert MusicGenConfig(default_duration=90, max_duration=120).default_duration == 90


# -- 2. upstream errors never carry the binding's secrets ----------------------------------

KEY = "sk-binding-key-9f8e7d6c5b4a"
HEADER_SECRET = "hdr-secret-1a2b3c4d5e6f"
URL_PASSWORD = "url-pw-77aa88bb99cc"
URL_QUERY_SECRET = "query-secret-3344556677"


def _echo_upstream() -> FastAPI:
    """An upstream that echoes every request header (and the URL) in its error messages, as
    some proxies and debugging servers do: 400, or 404 for the model "missing"."""
    app = FastAPI()

    async def echo(request: Request, ollama: bool) -> Response:
        body = await request.json()
        status = 404 if body.get("model") == "missing" else 400
        seen = f"bad request to {request.url}; headers: {json.dumps(dict(request.headers))}"
        error: Any = seen if ollama else {"message": seen, "type": "invalid_request_error"}
        return Response(json.dumps({"error": error}), status, media_type="application/json")

    @app.get("/version")
    async def version() -> dict[str, str]:
        return {"version": "0.11.0"}

    @app.post("/api/show")
    async def show() -> dict[str, Any]:
        return {"model_info": {}}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await echo(request, ollama=False)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await echo(request, ollama=False)

    @app.post("/api/chat")
    async def ollama_chat(request: Request) -> Response:
        return await echo(request, ollama=True)

    @app.post("/api/generate")
    async def ollama_generate(request: Request) -> Response:
        return await echo(request, ollama=True)

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve_in_thread(_echo_upstream()) as url:
        yield url


def _echo_bindings(upstream: str) -> str:
    host = upstream.removeprefix("http://")
    return f"""
    [bindings.up]
    type = "openai"
    base_url = "{upstream}/v1"
    api_key = "{KEY}"
    headers = {{ X-Custom-Token = "{HEADER_SECRET}" }}
    models = ["m", "missing"]
    max_retries = 0

    [bindings.vl]
    type = "vllm"
    base_url = "{upstream}/v1"
    api_key = "{KEY}"
    headers = {{ X-Custom-Token = "{HEADER_SECRET}" }}
    models = ["m", "missing"]
    max_retries = 0

    [bindings.ol]
    type = "ollama"
    host = "{upstream}"
    api_key = "{KEY}"

    [bindings.basic]
    type = "openai"
    base_url = "http://user:{URL_PASSWORD}@{host}/v1"
    models = ["m"]
    max_retries = 0
    """


async def _echoed_errors(client: httpx.AsyncClient) -> list[httpx.Response]:
    responses = []
    for binding in ("up", "vl", "ol", "basic"):
        for model, stream in (("m", False), ("m", True), ("missing", False)):
            if binding == "basic" and model == "missing":
                continue
            body = {"prompt": "hi", "binding_name": binding, "model_name": model}
            responses.append(await client.post("/api/v1/generate", json={**body, "stream": stream}))
        responses.append(
            await client.post(
                "/v1/chat/completions",
                json={"model": f"{binding}/m", "messages": [{"role": "user", "content": "hi"}]},
            )
        )
    return responses


async def test_upstream_error_messages_lose_the_bindings_secrets(
    make_client: MakeClient, upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_client(_echo_bindings(upstream)) as client:
        responses = await _echoed_errors(client)
    basic = base64.b64encode(f"user:{URL_PASSWORD}".encode()).decode()
    statuses = [r.status_code for r in responses]
    assert 400 in statuses and 404 in statuses, statuses
    for response in responses:
        text = response.text
        # The upstream's message still comes through, redacted where it quoted secrets.
        assert "bad request to" in text and REDACTED in text, text
        for secret in (KEY, HEADER_SECRET, URL_PASSWORD, URL_QUERY_SECRET, basic):
            assert secret not in text, (secret, text)
    for secret in (KEY, HEADER_SECRET):
        assert secret not in caplog.text


def test_redactor_removes_secrets_in_the_forms_upstreams_echo_them() -> None:
    headers = {"Authorization": "Bearer tok/en+1", "X-Flag": "on"}
    redactor = Redactor(
        [None, "", *header_secrets(headers), *url_secrets("http://u:p%40ss-word@h/v1?k=q-secret")]
    )
    text = (
        'auth="Bearer tok/en+1" raw=tok/en+1 url=tok%2Fen%2B1 pw=p@ss-word '
        f"basic={base64.b64encode(b'u:p@ss-word').decode()} q=q-secret flag=on "
        "at http://x:y@host/a?b=c"
    )
    assert redactor(text) == (
        'auth="***" raw=*** url=*** pw=*** basic=*** q=*** flag=on at http://***@host/a?***'
    )
    assert Redactor([])("nothing to hide") == "nothing to hide"


# -- 3. credentials in base_url and a key: refused, not silently one of them ---------------


@pytest.mark.parametrize("binding_type", ["openai", "vllm"])
@pytest.mark.parametrize("key_line", ['api_key = "sk-configured"', 'api_key_env = "SOME_KEY"'])
def test_url_credentials_and_an_api_key_are_refused_at_start(
    make_settings: Callable[[str], Settings], binding_type: str, key_line: str
) -> None:
    settings = make_settings(
        f"""
        [bindings.remote]
        type = "{binding_type}"
        base_url = "http://user:{URL_PASSWORD}@127.0.0.1:1/v1"
        {key_line}
        models = ["m"]
        """
    )
    with pytest.raises(ConfigError) as info:
        BindingManager.from_settings(settings, build_registry(settings))
    assert info.value.key == "bindings.remote"
    assert "base_url carries credentials" in str(info.value)
    assert URL_PASSWORD not in str(info.value) and "sk-configured" not in str(info.value)


def test_url_credentials_alone_still_work(make_settings: Callable[[str], Settings]) -> None:
    settings = make_settings(
        f"""
        [bindings.remote]
        type = "openai"
        base_url = "http://user:{URL_PASSWORD}@127.0.0.1:1/v1"
        models = ["m"]
        """
    )
    assert BindingManager.from_settings(settings, build_registry(settings)).get("remote")


# -- 4. a personality logo replaced by a link after start-up -------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture
def logo_zoo(tmp_path: Path) -> tuple[Path, str]:
    zoo = tmp_path / "zoo"
    folder = zoo / "art" / "painter"
    (folder / "assets").mkdir(parents=True)
    (folder / "config.yaml").write_text("name: painter\npersonality_conditioning: paint\n")
    (folder / "assets" / "logo.png").write_bytes(PNG)
    return folder, f'[paths]\npersonalities = ["{zoo}"]\n'


async def test_a_logo_replaced_by_a_link_after_start_is_not_served(
    make_client: MakeClient, logo_zoo: tuple[Path, str]
) -> None:
    folder, extra = logo_zoo
    hostname = Path("/etc/hostname").read_bytes()
    async with make_client(extra) as client:
        before = await client.get("/api/v1/personalities/painter/logo")
        assert before.status_code == 200 and before.content == PNG
        logo = folder / "assets" / "logo.png"
        logo.unlink()
        logo.symlink_to("/etc/hostname")
        after = await client.get("/api/v1/personalities/painter/logo")
    assert after.status_code == 404, after.text
    assert hostname.strip() not in after.content


async def test_a_personality_folder_replaced_by_a_link_is_not_served(
    make_client: MakeClient, logo_zoo: tuple[Path, str], tmp_path: Path
) -> None:
    folder, extra = logo_zoo
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    (outside / "assets" / "logo.png").write_bytes(PNG + b"outside")
    async with make_client(extra) as client:
        assert (await client.get("/api/v1/personalities/painter/logo")).status_code == 200
        shutil.rmtree(folder)
        folder.symlink_to(outside)
        after = await client.get("/api/v1/personalities/painter/logo")
    assert after.status_code == 404 and b"outside" not in after.content
