"""A route class for the hot paths: FastAPI's route, minus its per-request machinery.

FastAPI (0.165 measured) spends about 0.65 ms of a 2-core machine's CPU between its router
and an endpoint that takes a JSON body and two dependencies: body parsing, dependency
solving, its exit stacks and telemetry hooks. That is a third of the time lollms_server adds
to a one-token answer. :class:`LeanRoute` keeps the route as FastAPI declares it (matching,
OpenAPI, middleware, exception handlers) and replaces only the request handler, when the
endpoint needs nothing but:

* one JSON body (``Body``, not a form), a pydantic model without extra validators on the
  parameter, validated by pydantic from the raw bytes;
* the :class:`~starlette.requests.Request`;
* dependencies marked :func:`request_only` (the key check, the services on ``app.state``):
  ``async`` functions of the request alone, run once each in declaration order (the
  dependencies of the app, of ``include_router`` and of the router first, as FastAPI runs
  them), and it returns a :class:`Response` (nothing to serialize).

Everything else takes FastAPI's own handler, unchanged: a route that needs more (query
parameters, other dependencies, a form, a route body-size limit), a body that is not sent as
JSON, every body that fails validation, and every request while ``app.dependency_overrides``
is set. A refused body therefore gets exactly the answer it got before (the same 400/415/422
and message), only after the key check rather than before it. Not called on the lean path:
FastAPI's telemetry hooks and wrappers an integration puts around ``dependant.call``.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import fastapi.routing
from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["Handler", "LeanRoute", "request_only"]

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])
_MARK = "__lollms_request_only__"
Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def request_only(dependency: _F) -> _F:
    """Mark an ``async`` dependency whose only parameter is the request (and which has no
    sub-dependencies): :class:`LeanRoute` may call it directly."""
    if not inspect.iscoroutinefunction(dependency):
        raise TypeError(f"{dependency.__qualname__} must be async to be request_only")
    setattr(dependency, _MARK, True)
    return typing.cast(_F, dependency)  # iscoroutinefunction narrowed its type


@dataclass(frozen=True)
class _Plan:
    """How to call one endpoint without FastAPI's handler."""

    endpoint: Callable[..., Awaitable[Response]]
    dependencies: tuple[tuple[tuple[str, ...], Callable[[Request], Awaitable[Any]]], ...]
    body_name: str
    model: type[BaseModel]
    request_name: str | None

    async def call(self, request: Request, fallback: Handler, overridden: bool) -> Response:
        if overridden or not _is_json(request.headers.get("content-type")):
            return await fallback(request)
        values: dict[str, Any] = {}
        for names, dependency in self.dependencies:
            value = await dependency(request)
            values.update(dict.fromkeys(names, value))
        try:
            raw = await request.body()
        except HTTPException:  # too large, a lone surrogate: the edge's own answers
            raise
        except Exception as exc:  # the client left while sending it: as FastAPI answers
            raise HTTPException(400, "There was an error parsing the body") from exc
        try:
            values[self.body_name] = self.model.model_validate_json(raw)
        except ValidationError:  # FastAPI's handler words the answer, as for every route
            return await fallback(request)
        if self.request_name is not None:
            values[self.request_name] = request
        return await self.endpoint(**values)


class LeanRoute(APIRoute):
    """An :class:`APIRoute` whose handler calls the endpoint directly when it can (see the
    module's docstring); otherwise it is FastAPI's route as it is."""

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        plan = _plan(_effective(self))
        if plan is None:
            return fallback

        async def handler(request: Request) -> Response:
            overridden = bool(getattr(request.app, "dependency_overrides", None))
            return await plan.call(request, fallback, overridden)

        return handler


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json"


def _effective(route: APIRoute) -> Any:
    """What FastAPI builds this handler for: since 0.16x, an included route is not copied
    but served through an "effective route context" holding the dependencies of the app and
    of ``include_router`` as well, set while this handler is built; before, the copy itself."""
    current = getattr(fastapi.routing, "_effective_route_context_var", None)
    context = current.get() if current is not None else None
    if context is not None and getattr(context, "original_route", None) is route:
        return context
    return route


def _plan(route: Any) -> _Plan | None:
    """The direct call for ``route``'s endpoint (an APIRoute or FastAPI's effective context of
    one), or None when FastAPI's handler is needed."""
    dependant: Dependant | None = getattr(route, "dependant", None)
    endpoint = getattr(route, "endpoint", None)
    if (
        dependant is None
        or endpoint is None
        or not _plain(dependant, body=1)
        or getattr(route, "max_body_size", None) is not None
        or getattr(route, "_embed_body_fields", True)
        or not inspect.iscoroutinefunction(endpoint)
        or not _returns_response(endpoint)
    ):
        return None
    calls: dict[Callable[..., Any], list[str]] = {}  # once each, as FastAPI caches them
    for sub in dependant.dependencies:
        if sub.call is None or not getattr(sub.call, _MARK, False):
            return None
        if sub.dependencies or not _plain(sub, body=0) or sub.request_param_name is None:
            return None
        calls.setdefault(sub.call, []).extend([sub.name] if sub.name else [])
    body = dependant.body_params[0]
    info, model = body.field_info, body.field_info.annotation
    if type(info) is not params.Body or info.metadata:
        return None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    return _Plan(
        endpoint=endpoint,
        dependencies=tuple((tuple(names), call) for call, names in calls.items()),
        body_name=body.name,
        model=model,
        request_name=dependant.request_param_name,
    )


def _plain(dependant: Dependant, body: int) -> bool:
    """Whether ``dependant`` takes ``body`` body parameters and nothing from the request but
    the request itself."""
    return not (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or len(dependant.body_params) != body
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    """Whether the endpoint is declared to return a Response (nothing for FastAPI to
    serialize)."""
    try:
        returned = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(returned, type) and issubclass(returned, Response)
