from __future__ import annotations

import pytest

from lollms_server.app import create_app
from lollms_server.errors import ConfigError
from tests.conftest import API_KEY

PROTECTED = [
    ("GET", "/api/v1/list_bindings"),
    ("GET", "/api/v1/list_active_bindings"),
    ("GET", "/api/v1/list_models"),
    ("GET", "/api/v1/list_available_models/fake"),
    ("GET", "/api/v1/get_model_info/fake?model_name=scripted-model"),
    ("POST", "/api/v1/generate"),
    ("POST", "/api/v1/tokenize"),
    ("POST", "/api/v1/detokenize"),
    ("POST", "/api/v1/count_tokens"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_route_needs_a_key(make_client, method: str, path: str) -> None:
    async with make_client(auth=False) as client:
        missing = await client.request(method, path, json={"prompt": "x"})
        wrong = await client.request(
            method, path, json={"prompt": "x"}, headers={"Authorization": "Bearer wrong"}
        )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_bearer_and_x_api_key_are_accepted(make_client) -> None:
    async with make_client(auth=False) as client:
        bearer = await client.get(
            "/api/v1/list_models", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        header = await client.get("/api/v1/list_models", headers={"X-API-Key": API_KEY})
    assert bearer.status_code == 200
    assert header.status_code == 200


async def test_only_health_needs_no_key(make_client) -> None:
    async with make_client(auth=False) as client:
        health = await client.get("/health")
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
    assert health.json()["status"] == "ok"
    for response in (docs, spec):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        # A browser opening the page asks for the key (as a Basic password).
        assert response.headers["www-authenticate"].startswith("Basic ")


async def test_docs_work_with_the_key(make_client) -> None:
    import base64

    basic = "Basic " + base64.b64encode(f"me:{API_KEY}".encode()).decode()
    async with make_client(auth=False) as client:
        docs = await client.get("/docs", headers={"Authorization": basic})
        spec = await client.get("/openapi.json", headers={"X-API-Key": API_KEY})
        bearer = await client.get("/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"})
        wrong = await client.get(
            "/docs", headers={"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()}
        )
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert spec.json() == bearer.json()
    schemes = spec.json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert "/api/v1/generate" in spec.json()["paths"]
    assert wrong.status_code == 401


async def test_unreadable_body_without_key_is_401_not_400(make_client) -> None:
    async with make_client(auth=False) as client:
        anonymous = await client.post(
            "/api/v1/generate", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        with_key = await client.post(
            "/api/v1/generate",
            content=b"{not json",
            headers={"Content-Type": "application/json", "X-API-Key": API_KEY},
        )
    assert anonymous.status_code == 401
    assert "not json" not in anonymous.text
    assert with_key.status_code == 400
    assert with_key.json()["error"]["type"] == "invalid_json"


async def test_hashed_key_only_in_config(make_client) -> None:
    import hashlib

    digest = hashlib.sha256(b"hashed-secret").hexdigest()
    base = f"""
    [[security.api_keys]]
    name = "h"
    sha256 = "{digest}"
    [defaults]
    ttt_binding = "fake"
    [bindings.fake]
    type = "scripted"
    """
    async with make_client(base=base, auth=False) as client:
        ok = await client.get("/api/v1/list_models", headers={"X-API-Key": "hashed-secret"})
        bad = await client.get("/api/v1/list_models", headers={"X-API-Key": digest})
    assert ok.status_code == 200
    assert bad.status_code == 401


def test_no_keys_refuses_to_start(make_settings) -> None:
    with pytest.raises(ConfigError) as info:
        create_app(make_settings(base="[server]\n"))
    assert info.value.key == "security.api_keys"


async def test_allow_no_keys_on_loopback_warns(make_settings, caplog) -> None:
    import httpx

    settings = make_settings(
        base='[security]\nallow_no_keys = true\n[bindings.fake]\ntype = "scripted"\n'
    )
    app = create_app(settings)
    assert "WITHOUT API keys" in caplog.text
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        response = await client.get("/api/v1/list_models")
    assert response.status_code == 200


def test_no_keys_on_public_address_refuses(make_settings) -> None:
    settings = make_settings(base='[server]\nhost = "0.0.0.0"\n[security]\nallow_no_keys = true\n')
    with pytest.raises(ConfigError) as info:
        create_app(settings)
    assert info.value.key == "server.host"


async def test_every_route_of_the_app_needs_a_key(make_client) -> None:
    """All routes the app declares (its OpenAPI document, new ones included): 401 without a
    key."""
    open_routes = {"/health"}
    async with make_client(auth=False) as client:
        paths = (await client.get("/openapi.json", headers={"X-API-Key": API_KEY})).json()["paths"]
        assert len(paths) > 40
        for path, operations in paths.items():
            if path in open_routes:
                continue
            url = (
                path.replace("{binding_type}", "llm")
                .replace("{name}", "x")
                .replace("{binding_name}", "fake")
                .replace("{model_id}", "x")
            )
            for method in operations:
                response = await client.request(method.upper(), url, json={"prompt": "x"})
                assert response.status_code == 401, (method, path, response.text)


async def test_text2audio_takes_the_key_in_any_form(make_client) -> None:
    """lollms-webui's /text2Audio: the key as client_id, Bearer or X-API-Key (no tts default
    is configured here, so an accepted key reaches the 400 that says so)."""
    async with make_client(auth=False) as client:
        header = await client.post(
            "/text2Audio", json={"text": "hi"}, headers={"X-API-Key": API_KEY}
        )
        body = await client.post("/text2Audio", json={"text": "hi", "client_id": API_KEY})
        none = await client.post("/text2Audio", json={"text": "hi"})
    assert header.status_code == body.status_code == 400
    assert none.status_code == 401


async def test_ollama_routes_answer_401_with_the_challenge(make_client) -> None:
    async with make_client(auth=False) as client:
        response = await client.get("/api/tags")
    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)  # Ollama's own error shape
    assert response.headers["www-authenticate"] == "Bearer"


_MODEL = "fake/scripted-model"
_MESSAGES = [{"role": "user", "content": "x"}]
VALID_BODIES = [  # the routes whose handler calls the endpoint directly (api/lean.py)
    ("/v1/chat/completions", {"model": _MODEL, "messages": _MESSAGES}),
    ("/v1/completions", {"model": _MODEL, "prompt": "x"}),
    ("/v1/responses", {"model": _MODEL, "input": "x"}),
    ("/api/v1/generate", {"prompt": "x"}),
    ("/api/generate", {"model": _MODEL, "prompt": "x", "stream": False}),
    ("/api/chat", {"model": _MODEL, "messages": _MESSAGES, "stream": False}),
    ("/lollms_generate", {"prompt": "x"}),
]


@pytest.mark.parametrize(("path", "body"), VALID_BODIES)
async def test_a_valid_body_without_a_key_is_refused(make_client, path: str, body: dict) -> None:
    """The lean routes check the key before anything else, a valid body included."""
    async with make_client(auth=False) as client:
        refused = await client.post(path, json=body)
        answered = await client.post(path, json=body, headers={"X-API-Key": API_KEY})
    assert refused.status_code == 401, refused.text
    assert answered.status_code == 200, answered.text  # the body was valid: the lean path
