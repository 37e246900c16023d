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
        wrong = await client.request(method, path, json={"prompt": "x"},
                                     headers={"Authorization": "Bearer wrong"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_bearer_and_x_api_key_are_accepted(make_client) -> None:
    async with make_client(auth=False) as client:
        bearer = await client.get("/api/v1/list_models",
                                  headers={"Authorization": f"Bearer {API_KEY}"})
        header = await client.get("/api/v1/list_models", headers={"X-API-Key": API_KEY})
    assert bearer.status_code == 200
    assert header.status_code == 200


async def test_health_and_docs_need_no_key(make_client) -> None:
    async with make_client(auth=False) as client:
        health = await client.get("/health")
        docs = await client.get("/docs")
        spec = await client.get("/openapi.json")
    assert health.json()["status"] == "ok"
    assert docs.status_code == 200
    schemes = spec.json()["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}


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

    settings = make_settings(base="[security]\nallow_no_keys = true\n[bindings.fake]\n"
                             'type = "scripted"\n')
    app = create_app(settings)
    assert "WITHOUT API keys" in caplog.text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
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
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert len(paths) > 40
        for path, operations in paths.items():
            if path in open_routes:
                continue
            url = path.replace("{binding_type}", "llm").replace("{name}", "x").replace(
                "{binding_name}", "fake").replace("{model_id}", "x")
            for method in operations:
                response = await client.request(method.upper(), url, json={"prompt": "x"})
                assert response.status_code == 401, (method, path, response.text)
