"""Request handling stays on the event loop: FastAPI runs a plain ``def`` endpoint or
dependency in its thread pool, a thread hand-off per request that showed up as time to first
token (bench/relay.py). Every route of the app, with every dependency under it, is async."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lollms_server.app import create_app


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)  # newer FastAPI nests included routers
        if inner is not None:
            yield from _api_routes(inner.routes)


def _callables(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _callables(sub)


def _is_async(call: Any) -> bool:
    # A function, or an instance whose __call__ is a coroutine (HTTPBearer, APIKeyHeader).
    return inspect.iscoroutinefunction(call) or (
        not inspect.isfunction(call) and inspect.iscoroutinefunction(type(call).__call__)
    )


def test_no_route_or_dependency_runs_in_the_thread_pool(make_settings) -> None:
    app = create_app(make_settings())
    routes = list(_api_routes(app.routes))
    assert len(routes) > 40  # native, OpenAI, Ollama, lollms-client, personalities, metrics
    sync = sorted(
        {
            f"{route.path}: {getattr(call, '__qualname__', call)!r}"
            for route in routes
            for call in (route.endpoint, *_callables(route.dependant))
            if not _is_async(call)
        }
    )
    assert sync == []
