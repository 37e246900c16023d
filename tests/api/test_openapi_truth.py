"""The OpenAPI document says what the routes do: their error statuses in the error envelope,
the media types they stream, and booleans that are booleans."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

ENVELOPE = "#/components/schemas/ErrorEnvelope"


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _statuses(document: dict[str, Any], path: str, method: str = "post") -> set[int]:
    return {int(s) for s in document["paths"][path][method]["responses"]}


def _refs(schema: dict[str, Any]) -> set[str]:
    found = {schema["$ref"]} if "$ref" in schema else set()
    for option in schema.get("anyOf", []):
        found |= _refs(option)
    return found


async def test_the_document_is_valid_openapi(client) -> None:
    from openapi_spec_validator import validate

    document = await _document(client)
    assert document["openapi"].startswith("3.") and document["paths"]
    validate(document)  # raises OpenAPIValidationError, naming the fault


async def test_every_keyed_operation_documents_401_and_errors_use_the_envelope(client) -> None:
    document = await _document(client)
    assert "HTTPValidationError" not in document["components"]["schemas"]  # never sent
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert ("401" in responses) == (path != "/health"), (method, path)
            for status, response in responses.items():
                if int(status) < 400:
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert ENVELOPE in _refs(schema), (method, path, status)


async def test_statuses_follow_what_a_route_does(client) -> None:
    document = await _document(client)
    generation = _statuses(document, "/api/v1/generate")
    assert {400, 401, 404, 409, 413, 415, 422, 500, 502, 503, 504, 507} <= generation
    # OpenAI routes answer validation errors as 400 (OpenAI's BadRequestError), never 422.
    chat = _statuses(document, "/v1/chat/completions")
    assert {400, 401, 404, 413, 415, 503, 507} <= chat and 422 not in chat
    # Ollama reads any body as JSON: no 415; its errors are Ollama's shape (or the envelope).
    ollama = _statuses(document, "/api/chat")
    assert {400, 401, 404, 413, 422, 503} <= ollama and 415 not in ollama
    # Routes not served answer 501, never 200.
    assert _statuses(document, "/api/pull") == {401, 501}
    assert _statuses(document, "/api/delete", "delete") == {401, 501}
    # Listings without input: only the key can be wrong.
    assert _statuses(document, "/api/v1/list_models", "get") == {200, 401}
    assert _statuses(document, "/health", "get") == {200}
    unavailable = document["paths"]["/api/v1/generate"]["post"]["responses"]["503"]
    assert "Retry-After" in unavailable["headers"]


async def test_streaming_and_text_routes_declare_their_media_types(client) -> None:
    document = await _document(client)

    def media(path: str) -> set[str]:
        return set(document["paths"][path]["post"]["responses"]["200"]["content"])

    assert media("/api/v1/generate") == {"application/json", "text/event-stream"}
    assert media("/v1/chat/completions") == {"application/json", "text/event-stream"}
    assert media("/v1/completions") == {"application/json", "text/event-stream"}
    assert media("/api/generate") == {"application/json", "application/x-ndjson"}
    assert media("/api/chat") == {"application/json", "application/x-ndjson"}
    assert media("/lollms_generate") == {"text/plain"}
    assert media("/lollms_generate_with_images") == {"text/plain"}
    assert media("/v1/audio/speech") == {"audio/wav", "audio/pcm"}


@pytest.mark.parametrize(
    ("path", "body", "status", "content_type"),
    [
        ("/lollms_generate", {"prompt": "hello there"}, 200, "text/plain"),
        ("/api/v1/generate", {"prompt": "hi", "stream": True}, 200, "text/event-stream"),
        (
            "/api/chat",
            {"model": "fake/scripted-model", "messages": [{"role": "user", "content": "hi"}]},
            200,
            "application/x-ndjson",
        ),
        ("/api/pull", {"model": "x"}, 501, "application/json"),
        ("/api/v1/generate", {"prompt": "x", "binding_name": "nope"}, 404, "application/json"),
        ("/v1/chat/completions", {"model": "fake/scripted-model"}, 400, "application/json"),
    ],
)
async def test_what_routes_answer_is_documented(
    client, path: str, body: dict[str, Any], status: int, content_type: str
) -> None:
    document = await _document(client)
    response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(content_type)
    documented = document["paths"][path]["post"]["responses"][str(status)]
    assert content_type in documented["content"]


async def test_edge_statuses_are_documented(client) -> None:
    document = await _document(client)
    as_text = await client.post(
        "/api/v1/generate", content=b"prompt=hi", headers={"Content-Type": "text/plain"}
    )
    not_json = await client.post(
        "/api/v1/tokenize", content=b"{", headers={"Content-Type": "application/json"}
    )
    too_big = await client.post("/api/v1/tokenize", content=b"x" * (16 * 1024 * 1024 + 1))
    no_key = await client.post(
        "/api/v1/tokenize", json={"text": "x"}, headers={"Authorization": ""}
    )
    assert as_text.status_code == 415 and 415 in _statuses(document, "/api/v1/generate")
    assert not_json.status_code == 400 and 400 in _statuses(document, "/api/v1/tokenize")
    assert too_big.status_code == 413 and 413 in _statuses(document, "/api/v1/tokenize")
    assert no_key.status_code == 401 and no_key.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/generate", {"model": "fake/scripted-model", "prompt": "x", "raw": 0}, "raw"),
        (
            "/api/generate",
            {"model": "fake/scripted-model", "prompt": "x", "stream": "no"},
            "stream",
        ),
        ("/api/v1/generate", {"prompt": "x", "stream": 1}, "stream"),
        ("/api/v1/generate", {"prompt": "x", "raw_prompt": "yes"}, "raw_prompt"),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": 0},
            "stream",
        ),
        ("/v1/completions", {"model": "m", "prompt": "x", "echo": "true"}, "echo"),
    ],
)
async def test_booleans_are_booleans(client, path: str, body: dict[str, Any], field: str) -> None:
    """``"raw": 0`` was read as false: the document says boolean, the wire has booleans."""
    response = await client.post(path, json=body)
    assert response.status_code in (400, 422), response.text
    assert field in response.text
