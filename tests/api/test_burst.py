"""Bursts at the scheduler through the app: admission by estimated wait, not queue length."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

BURST = """
[bindings.burst]
type = "scripted"
models = ["m"]
reply = "one two three four"
delay_s = 0.002
load_delay_s = 0.3
max_concurrency = 4
keep_alive = 0
"""

SLOW = """
[resources]
queue_timeout = 1.0

[bindings.slow]
type = "scripted"
models = ["m"]
reply = "one two three four five"
delay_s = 0.04
max_concurrency = 1
"""


async def _burst(
    client: httpx.AsyncClient, count: int, body: dict[str, Any]
) -> list[httpx.Response]:
    return await asyncio.gather(*(client.post("/api/v1/generate", json=body) for _ in range(count)))


async def test_burst_at_an_unloaded_model_is_served(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    """keep_alive 0: the model is unloaded between bursts, so each burst waits for a load.
    300 requests whose wait (a 0.3 s load, then ~75 rounds of ~10 ms) fits the 120 s
    queue_timeout are all served: none is refused as 'overloaded'."""
    body = {"prompt": "x", "binding_name": "burst"}
    async with make_client(BURST) as client:
        first = await client.post("/api/v1/generate", json=body)
        assert first.status_code == 200, first.text  # loaded, served, unloaded (keep_alive 0)
        scheduler = client._transport.app.state.scheduler  # type: ignore[attr-defined]
        for _ in range(100):
            if not scheduler.loaded():
                break
            await asyncio.sleep(0.01)
        assert not scheduler.loaded()
        responses = await _burst(client, 300, body)
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {200: 300}, {r.text for r in responses if r.status_code != 200}


async def test_queue_that_cannot_be_served_in_time_is_refused_at_once(
    make_client: Callable[..., httpx.AsyncClient],
) -> None:
    """One slot, ~0.2 s a request, 1 s of queue_timeout: about five fit. The rest are
    refused on arrival as 'overloaded' with a Retry-After (today they all wait out the second
    and get 'queue_timeout'). An estimate is an estimate: one or two admitted requests may
    still time out on a busy machine."""
    body = {"prompt": "x", "binding_name": "slow"}
    async with make_client(SLOW) as client:
        assert (await client.post("/api/v1/generate", json=body)).status_code == 200
        started = time.perf_counter()

        async def timed() -> tuple[httpx.Response, float]:
            response = await client.post("/api/v1/generate", json=body)
            return response, time.perf_counter() - started

        results = await asyncio.gather(*(timed() for _ in range(30)))
    kinds = Counter(
        "served" if r.status_code == 200 else r.json()["error"]["type"] for r, _ in results
    )
    assert set(kinds) <= {"served", "overloaded", "queue_timeout"}, kinds
    assert kinds["served"] >= 2 and kinds["overloaded"] >= 20 and kinds["queue_timeout"] <= 2
    for response, elapsed in results:
        if response.status_code == 503 and response.json()["error"]["type"] == "overloaded":
            assert int(response.headers["retry-after"]) >= 1
            assert "queue_timeout" in response.json()["error"]["message"]
            assert elapsed < 1.0  # refused on arrival, not after waiting out the timeout
