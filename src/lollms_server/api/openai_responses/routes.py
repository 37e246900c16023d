"""``/v1/responses``: create (whole or streamed), retrieve and delete stored responses."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from lollms_server.api.deps import ApiKey, Generation, require_api_key
from lollms_server.api.disconnect import collect_run, first_ready, start_run, start_stream
from lollms_server.api.kit.encode import encode
from lollms_server.api.lean import LeanRoute
from lollms_server.api.openai_responses import translate
from lollms_server.api.openai_responses.schemas import ResponseRequest
from lollms_server.api.openai_responses.store import ResponseStore, Stored
from lollms_server.api.responses import JSONResponse
from lollms_server.api.streaming import SSEResponse, encode_event
from lollms_server.bindings.types import Message
from lollms_server.generation.fold import CollectedOutput

__all__ = ["router"]

router = APIRouter(
    prefix="/v1", dependencies=[Depends(require_api_key)], tags=["openai"], route_class=LeanRoute
)
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
_UNKNOWN: dict[int | str, dict[str, Any]] = {
    404: {"description": "No stored response with this id for this API key.", "content": _ENVELOPE}
}
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "The response, or its events."}
}


class TypedSSE(SSEResponse):
    """SSE whose records are batches of typed events, each sent as ``event: <type>``."""

    def frame(self, payload: dict[str, Any]) -> bytes:
        return b"".join(
            b"event: " + str(event["type"]).encode() + b"\n" + encode_event(event)
            for event in payload["events"]
        )


def _error_event(body: dict[str, Any]) -> dict[str, Any]:
    error = body.get("error", {})
    event = {
        "type": "error",
        "code": error.get("type"),
        "message": error.get("message", ""),
        "param": error.get("param"),
        "sequence_number": 0,
    }
    return {"events": [event]}


def response_store(request: Request) -> ResponseStore:
    """The app's store of recent responses (made on first use)."""
    state = request.app.state
    store: ResponseStore | None = getattr(state, "response_store", None)
    if store is None:
        store = state.response_store = ResponseStore()
    return store


@router.post("/responses", response_class=Response, responses=_STREAM)
async def create_response(
    body: ResponseRequest, service: Generation, request: Request, key: ApiKey
) -> Response:
    """A model response to ``input`` (after ``previous_response_id``'s conversation)."""
    store = response_store(request)
    history = (
        store.get(key, body.previous_response_id).messages if body.previous_response_id else ()
    )
    instance, model = await service.find_model(body.model)
    messages = translate.conversation(body, history)
    wanted = translate.generation_request(body, instance, model, messages)
    personality = wanted.personality or service.alias_personality(body.model)
    start = start_stream if body.stream else start_run
    run = await start(request, service, replace(wanted, personality=personality))
    response_id, model_id = f"resp_{run.request_id[4:]}", f"{instance}/{model}"

    def keep(out: CollectedOutput, final: dict[str, Any]) -> None:
        if body.store is not False and final["status"] != "failed":
            turn: tuple[Message, ...] = (*messages, *translate.output_messages(out))
            store.put(key, response_id, Stored(turn, final))

    if body.stream:
        events = translate.ResponseEvents(response_id, model_id, body, keep)
        return TypedSSE(
            encode(run, events),
            on_close=run.aclose,
            error_event=_error_event,
            first_ready=first_ready(run),
        )
    out = await collect_run(request, run)
    final = translate.response_body(response_id, model_id, body, out)
    keep(out, final)
    return JSONResponse(final)


@router.get("/responses/{response_id}", responses=_UNKNOWN)
async def get_response(response_id: str, request: Request, key: ApiKey) -> dict[str, Any]:
    """A stored response of this API key."""
    return response_store(request).get(key, response_id, param="response_id").body


@router.delete("/responses/{response_id}", responses=_UNKNOWN)
async def delete_response(response_id: str, request: Request, key: ApiKey) -> dict[str, Any]:
    """Forget a stored response of this API key."""
    response_store(request).delete(key, response_id)
    return {"id": response_id, "object": "response", "deleted": True}
