"""The OpenAPI document, made true: what each operation can answer, and in which media types.

FastAPI documents a 200 and, for operations with inputs, a 422 in its own error shape. This
server answers every error in the envelope of api/errors.py (``{"error": {"type", "message",
"param", "code"}}``; the Ollama routes ``{"error": "message"}``), with statuses that follow
from what a route depends on:

- every route but ``/health`` checks the key: 401;
- inputs (path, query or body): 400 (a value the route refuses) and 422 (validation; 400 on
  the OpenAI routes, as OpenAI answers);
- a body: 400 (not JSON, or text holding a lone surrogate) and 413; a JSON body also 415
  (sent as another type), except on the Ollama routes, which read any body as JSON;
- the generation service or the bindings, with inputs: 404 (instance, model, personality),
  409 (an ambiguous name, a model busy) and 503 (binding unavailable, queue full or too long);
  a POST runs a model as well: 500 (model load or script failure), 502 (engine or upstream
  failure), 504 (script time limit), 507 (the model can never fit in memory);
- Ollama's model-file routes: 501 (not served).

Routes that stream or answer other media types are declared here as well: Server-Sent
Events, NDJSON, plain text, audio and images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, get_args

from fastapi import FastAPI, params, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lollms_server.api.deps import Bindings, Generation, Registry
from lollms_server.api.errors import VALIDATION_AS_400_PREFIX
from lollms_server.api.native.personalities import personality_logo
from lollms_server.api.native.routes import generate as native_generate
from lollms_server.api.ollama.routes import chat as ollama_chat
from lollms_server.api.ollama.routes import generate as ollama_generate
from lollms_server.api.ollama.routes import model_files
from lollms_server.api.openai.media import speech, transcriptions, translations
from lollms_server.api.openai.routes import chat_completions, completions
from lollms_server.api.webui.routes import lollms_generate

__all__ = [
    "OPEN_PATHS",
    "Route",
    "api_routes",
    "correct_document",
    "error_statuses",
    "install_openapi",
]

# The routes that need no key (README: "every route but /health").
OPEN_PATHS = frozenset({"/health"})
# The two ways to send the key (api/auth.py), for the docs page's "Authorize".
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key>",
    },
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "X-API-Key: <key>",
    },
}
ERROR = "ErrorEnvelope"
OLLAMA_ERROR = "OllamaError"

_REASONS = {
    400: "Invalid request: a body that is not JSON, text holding a lone UTF-16 surrogate, or "
    "a value the server refuses; `param` names the field.",
    401: "Missing or invalid API key.",
    404: "No such binding instance, model, personality or resource.",
    409: "An ambiguous name, or a model whose state does not allow the change now.",
    413: "Request body over [server] max_request_bytes.",
    415: "The body was not sent as JSON (Content-Type: application/json).",
    422: "The body or a parameter fails validation; `param` names the first field.",
    500: "The model could not be loaded, or a personality's script failed.",
    501: "Not served by this server.",
    502: "The engine or the upstream server failed while generating.",
    503: "Binding unavailable, request queue full or waited too long: retry later.",
    504: "A personality's script ran past [personalities] script_timeout.",
    507: "The model can never fit in the memory budget.",
}
_HEADERS = {
    401: {"WWW-Authenticate": "The authentication scheme to use."},
    503: {"Retry-After": "Seconds to wait before retrying (when retrying can help)."},
}
_SERVICES = frozenset(get_args(alias)[1].dependency for alias in (Generation, Bindings, Registry))
_RUNS_MODEL = frozenset({500, 502, 503, 504, 507})


def _json_events(description: str) -> dict[str, Any]:
    """One Server-Sent Event whose data is a JSON object with a ``type``."""
    data = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string"}},
        },
    }
    return _event(description, data)


def _event(description: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "type": "object",
        "required": ["data"],
        "properties": {"data": data or {"type": "string"}},
    }


_NATIVE_SSE = _json_events(
    "With `stream: true`: one event per chunk, step, tool call or tool result, then one "
    "`final` event holding the whole response (or an `error` event)."
)
_OPENAI_SSE = _event(
    "With `stream: true`: `chat.completion.chunk` (or `text_completion`) objects as JSON, "
    "an error object if generation fails after the start, then `[DONE]`."
)
_NDJSON = {
    "description": "With `stream` true (Ollama's default): one JSON object per line, the "
    "last with `done: true` (or an object with `error`).",
    "type": "object",
}
_BINARY: dict[str, Any] = {}

# Media types of a 200 beyond what FastAPI sees (routes that return a Response themselves):
# added to the JSON answer, or (``replace``) instead of it.
_MEDIA: dict[Callable[..., Any], tuple[bool, dict[str, dict[str, Any]]]] = {
    native_generate: (False, {"text/event-stream": {"schema": _NATIVE_SSE}}),
    chat_completions: (False, {"text/event-stream": {"schema": _OPENAI_SSE}}),
    completions: (False, {"text/event-stream": {"schema": _OPENAI_SSE}}),
    ollama_generate: (False, {"application/x-ndjson": {"schema": _NDJSON}}),
    ollama_chat: (False, {"application/x-ndjson": {"schema": _NDJSON}}),
    lollms_generate: (True, {"text/plain": {"schema": {"type": "string"}}}),
    transcriptions: (False, {"text/plain": {"schema": {"type": "string"}}}),
    translations: (False, {"text/plain": {"schema": {"type": "string"}}}),
    speech: (True, {"audio/wav": _BINARY, "audio/pcm": _BINARY}),
    personality_logo: (True, {"image/*": _BINARY, "application/octet-stream": _BINARY}),
}
_NOT_SERVED: frozenset[Callable[..., Any]] = frozenset({model_files})


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the true document: FastAPI's (built once and cached, as
    always), corrected by :func:`correct_document`."""
    build = app.openapi
    app.openapi_schema = None
    corrected = False

    def openapi() -> dict[str, Any]:
        nonlocal corrected
        document = build()
        if not corrected:
            correct_document(app, document)
            corrected = True
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def correct_document(app: FastAPI, document: dict[str, Any]) -> None:
    """Give every operation of ``document`` (FastAPI's, for ``app``) its true responses."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(_error_schemas())
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    security = _security(components)
    for route, method, operation in _operations(app, document):
        _fix_operation(route, method, operation, security)
    # FastAPI's error models, in a shape this server never sends: dropped once unreferenced.
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in json.dumps(document):
            schemas.pop(name, None)


def error_statuses(route: Route, method: str) -> set[int]:
    """The error statuses ``route`` can answer to ``method``, from what it depends on."""
    dependant = route.dependant
    inputs = bool(dependant.path_params or dependant.query_params or route.body_field)
    found: set[int] = set()
    if route.path not in OPEN_PATHS:
        found.add(401)
    if inputs:  # a refused value; validation errors (OpenAI's routes: 400 as well)
        found |= {400} if route.path.startswith(VALIDATION_AS_400_PREFIX) else {400, 422}
    if route.body_field is not None:
        found |= {400, 413}
        if _json_body(route) and not _is_ollama(route):
            found.add(415)
    if inputs and _uses_services(dependant):
        found |= {404, 409, 503}
        if method == "POST":
            found |= _RUNS_MODEL
    if route.endpoint in _NOT_SERVED:
        found.add(501)
    return found


@dataclass(frozen=True)
class Route:
    """What the document needs to know of one route, as the app serves it (prefix and the
    including router's dependencies and tags applied)."""

    path: str
    path_format: str
    methods: frozenset[str]
    endpoint: Callable[..., Any] | None
    tags: tuple[str, ...]
    dependant: Dependant
    body_field: Any

    @classmethod
    def of(cls, route: Any) -> Route:
        """From an ``APIRoute``, or FastAPI's view of one inside an included router."""
        return cls(
            path=route.path,
            path_format=route.path_format,
            methods=frozenset(route.methods or ()),
            endpoint=route.endpoint,
            tags=tuple(str(t) for t in route.tags),
            dependant=route.dependant,
            body_field=route.body_field,
        )


def api_routes(app: FastAPI) -> Iterator[Route]:
    """Every documented API route of ``app``, as served."""
    # FastAPI >= 0.16x keeps included routers whole: their routes, with the prefix and
    # dependencies applied, come from iter_route_contexts (older ones list them in app.routes).
    contexts = getattr(routing, "iter_route_contexts", None)
    routes: Iterable[Any] = contexts(app.routes) if contexts is not None else app.routes
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield Route.of(route)


def _operations(
    app: FastAPI, document: dict[str, Any]
) -> Iterator[tuple[Route, str, dict[str, Any]]]:
    paths = document.get("paths", {})
    for route in api_routes(app):
        for method in sorted(route.methods):
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is not None:
                yield route, method, operation


def _fix_operation(
    route: Route, method: str, operation: dict[str, Any], security: list[dict[str, list[str]]]
) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's, in a shape this server never sends
    if route.endpoint in _NOT_SERVED:
        responses.pop("200", None)  # it never succeeds
    ok = responses.get("200")
    if ok is not None and route.endpoint in _MEDIA:
        replace, media = _MEDIA[route.endpoint]
        content = ok.setdefault("content", {})
        if replace:
            content.clear()
        content.update(media)
    schema = _error_schema_ref(route)
    for status in sorted(error_statuses(route, method)):
        responses[str(status)] = _error_response(status, schema)
    if route.path not in OPEN_PATHS and security and "security" not in operation:
        operation["security"] = security  # a key in the headers works on every keyed route


def _error_response(status: int, schema: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _REASONS[status],
        "content": {"application/json": {"schema": schema}},
    }
    headers = _HEADERS.get(status)
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


def _error_schema_ref(route: Route) -> dict[str, Any]:
    envelope = {"$ref": f"#/components/schemas/{ERROR}"}
    if not _is_ollama(route):
        return envelope
    # Ollama's own shape, except where the edge answers before the route (413, 400 for text
    # holding a lone surrogate): those are the envelope.
    return {"anyOf": [{"$ref": f"#/components/schemas/{OLLAMA_ERROR}"}, envelope]}


def _error_schemas() -> dict[str, Any]:
    nullable_string = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    return {
        ERROR: {
            "title": ERROR,
            "description": "Every error this server answers (Ollama routes: OllamaError).",
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["type", "message", "param"],
                    "properties": {
                        "type": {"type": "string", "description": "A stable error type."},
                        "message": {"type": "string"},
                        "param": {**nullable_string, "description": "The field at fault."},
                        "code": {"type": "string", "description": "The type again (OpenAI)."},
                    },
                }
            },
        },
        OLLAMA_ERROR: {
            "title": OLLAMA_ERROR,
            "description": "Errors of the Ollama-compatible routes, in Ollama's shape.",
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
    }


def _security(components: dict[str, Any]) -> list[dict[str, list[str]]]:
    return [{name: []} for name in components.get("securitySchemes", {})]


def _uses_services(dependant: Dependant) -> bool:
    return any(sub.call in _SERVICES or _uses_services(sub) for sub in dependant.dependencies)


def _json_body(route: Route) -> bool:
    body = route.body_field
    return body is not None and not isinstance(body.field_info, params.Form)  # File is a Form


def _is_ollama(route: Route) -> bool:
    return "ollama" in route.tags
