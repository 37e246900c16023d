"""LeanRoute: the hot routes skip FastAPI's per-request dependency solving, and answer every
request exactly as FastAPI's own handler does."""

from __future__ import annotations

from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse, Response

from lollms_server.api.lean import LeanRoute, request_only

KEY = "lean-key"
seen: list[str] = []


class Body(BaseModel):
    prompt: str = Field(min_length=1)
    n: int = Field(1, ge=1, le=4)
    tags: list[str] = []


@request_only
async def check_key(request: Request) -> str:
    seen.append("key")
    if request.headers.get("x-api-key") != KEY:
        raise PermissionError("no key")
    return "caller"


@request_only
async def caller_name(request: Request) -> str:
    seen.append("name")
    return "named"


def build(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(dependencies=[Depends(check_key)], route_class=route_class)

    @router.post("/echo")
    async def echo(
        body: Body, name: Annotated[str, Depends(caller_name)], request: Request
    ) -> Response:
        seen.append("endpoint")
        return JSONResponse({"body": body.model_dump(), "name": name, "path": request.url.path})

    @router.post("/query")
    async def query(body: Body, limit: int = 3) -> Response:  # a query parameter: FastAPI's
        return JSONResponse({"prompt": body.prompt, "limit": limit})

    app = FastAPI()
    app.include_router(router)

    @app.exception_handler(PermissionError)
    async def denied(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=401)

    return app


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/echo", {"json": {"prompt": "hi", "n": 2, "tags": ["a"]}}),
    ("/echo", {"json": {"prompt": ""}}),  # a constraint
    ("/echo", {"json": {"prompt": "hi", "n": "2"}}),  # lax coercion, as FastAPI does
    ("/echo", {"json": {"prompt": "hi", "n": 9}}),
    ("/echo", {"json": {"n": 1}}),  # a missing field
    ("/echo", {"json": ["not", "an", "object"]}),
    ("/echo", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("/echo", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("/echo", {"content": b'{"prompt": "hi"}', "headers": {"content-type": "text/plain"}}),
    ("/echo", {"content": b'{"prompt": "hi"}'}),  # no content type
    ("/echo", {"data": {"prompt": "hi"}}),  # a form
    ("/echo", {"json": {"prompt": "hi"}, "headers": {"x-api-key": "wrong"}}),
    ("/query?limit=5", {"json": {"prompt": "hi"}}),
    ("/query?limit=x", {"json": {"prompt": "hi"}}),
]


async def answers(app: FastAPI) -> list[tuple[int, str]]:
    found = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path, options in REQUESTS:
            headers = {"x-api-key": KEY, **options.get("headers", {})}
            sent = {k: v for k, v in options.items() if k != "headers"}
            response = await client.post(path, headers=headers, **sent)
            found.append((response.status_code, response.text))
    return found


async def test_answers_are_fastapis_own() -> None:
    assert await answers(build(LeanRoute)) == await answers(build(APIRoute))


async def test_a_valid_body_skips_dependency_solving(monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append("solved")
        return await original(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    app = build(LeanRoute)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        seen.clear()
        lean = await client.post("/echo", json={"prompt": "hi"}, headers={"x-api-key": KEY})
        assert lean.status_code == 200 and lean.json()["name"] == "named"
        assert solved == []  # the endpoint was called directly
        assert seen == ["key", "name", "endpoint"]  # the key check first, in declared order
        other = await client.post("/query", json={"prompt": "hi"}, headers={"x-api-key": KEY})
        assert other.status_code == 200 and solved == ["solved"]  # FastAPI's handler


async def test_the_key_is_checked_before_the_body_is_read() -> None:
    app = build(LeanRoute)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        seen.clear()
        response = await client.post("/echo", json={"n": "many"})
    assert response.status_code == 401
    assert seen == ["key"]


async def test_dependency_overrides_are_honoured() -> None:
    app = build(LeanRoute)

    async def open_door(request: Request) -> str:
        return "override"

    app.dependency_overrides[check_key] = open_door
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post("/echo", json={"prompt": "hi"})  # no key: overridden
    assert response.status_code == 200


def test_request_only_refuses_a_plain_function() -> None:
    def plain(request: Request) -> str:
        return "x"

    with pytest.raises(TypeError, match="must be async"):
        request_only(plain)


@pytest.mark.parametrize("where", ["include_router", "app"])
async def test_dependencies_added_where_the_router_is_included_still_run(where: str) -> None:
    """FastAPI 0.16x serves an included route through a context holding the app's and
    include_router's dependencies: the lean path runs them too."""
    router = APIRouter(route_class=LeanRoute)

    @router.post("/open")
    async def open_route(body: Body) -> Response:
        return JSONResponse({"prompt": body.prompt})

    if where == "app":
        app = FastAPI(dependencies=[Depends(check_key)])
        app.include_router(router)
    else:
        app = FastAPI()
        app.include_router(router, dependencies=[Depends(check_key)])

    @app.exception_handler(PermissionError)
    async def denied(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=401)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.post("/open", json={"prompt": "hi"})
        allowed = await client.post("/open", json={"prompt": "hi"}, headers={"x-api-key": KEY})
    assert refused.status_code == 401
    assert allowed.status_code == 200


async def test_a_dependency_asked_twice_runs_once() -> None:
    router = APIRouter(dependencies=[Depends(check_key)], route_class=LeanRoute)

    @router.post("/twice")
    async def twice(body: Body, key: Annotated[str, Depends(check_key)]) -> Response:
        return JSONResponse({"key": key})

    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        seen.clear()
        response = await client.post("/twice", json={"prompt": "hi"}, headers={"x-api-key": KEY})
    assert response.json() == {"key": "caller"}
    assert seen == ["key"]
