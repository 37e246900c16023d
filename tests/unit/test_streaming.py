"""The SSE response: whatever happens from its first send on, the generation under it is
closed (its lease released)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lollms_server.api.streaming import SSEResponse


async def _events() -> AsyncIterator[dict[str, Any]]:
    yield {"type": "chunk", "content": "x"}


async def _receive() -> dict[str, Any]:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


@pytest.mark.parametrize("failure", [OSError("connection reset"), asyncio.CancelledError()])
async def test_on_close_runs_when_the_response_start_fails(failure: BaseException) -> None:
    closed = []

    async def on_close() -> None:
        closed.append(True)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            raise failure

    response = SSEResponse(_events(), on_close=on_close)
    # A gone client (OSError) ends the response quietly; a cancellation goes on up.
    expected = (
        pytest.raises(asyncio.CancelledError)
        if isinstance(failure, asyncio.CancelledError)
        else contextlib.nullcontext()
    )
    with expected:
        await response({"type": "http"}, _receive, send)
    assert closed == [True]
