"""The scheduler seen through HTTP: status, metrics, 503s, and disconnects on a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import API_KEY, AUTH, BASE_CONFIG
from tests.live import serve_in_thread

SLOW = """
[resources]
max_queue = 1
queue_timeout = 5

[bindings.slow]
type = "scripted"
models = ["m"]
reply = "one two three four five six seven eight nine ten eleven twelve"
delay_s = 0.05
max_concurrency = 1
"""


async def test_status_and_metrics_need_the_key(make_client) -> None:
    async with make_client(SLOW, auth=False) as client:
        assert (await client.get("/api/v1/status")).status_code == 401
        assert (await client.get("/metrics")).status_code == 401
        client.headers.update(AUTH)
        await client.post("/api/v1/generate", json={"prompt": "hello world"})
        status = (await client.get("/api/v1/status")).json()
        metrics = (await client.get("/metrics")).text
    assert status["active_generations"] == 0
    assert {"cpu", "gpu:0"} <= set(status["devices"])
    assert status["models"][0]["model_name"] == "scripted-model"
    assert status["models"][0]["status"] == "loaded"
    assert 'lollms_requests_total{outcome="completed"} 1.0' in metrics
    assert 'lollms_tokens_generated_total{binding="fake"} 2.0' in metrics
    assert "lollms_queue_wait_seconds_bucket" in metrics
    assert "lollms_model_loads_total 1.0" in metrics
    # gauges read from the status: where each model runs, memory per device, queues
    assert 'lollms_model_loaded{binding="fake",device="cpu",model="scripted-model"} 1.0' in metrics
    assert 'lollms_model_queued{binding="fake",model="scripted-model"} 0.0' in metrics
    assert 'lollms_device_memory_bytes{device="cpu",kind="budget"}' in metrics
    assert "lollms_queue_depth 0.0" in metrics


async def test_full_queue_and_queue_timeout_are_503_with_retry_after(make_client) -> None:
    async with make_client(SLOW) as client:
        body = {"prompt": "x", "binding_name": "slow"}
        first = asyncio.create_task(client.post("/api/v1/generate", json=body))
        await asyncio.sleep(0.1)  # first is running (1 slot)
        second = asyncio.create_task(
            client.post("/api/v1/generate", json={**body, "queue_timeout": 0.2})
        )
        await asyncio.sleep(0.05)  # second waits in the queue (max_queue = 1)
        third = await client.post("/api/v1/generate", json=body)
        assert third.status_code == 503
        assert third.json()["error"]["type"] == "overloaded"
        assert int(third.headers["retry-after"]) >= 1
        timed_out = await second
        assert timed_out.status_code == 503
        assert timed_out.json()["error"]["type"] == "queue_timeout"
        assert "retry-after" in timed_out.headers
        assert (await first).status_code == 200


async def test_model_too_big_is_507(make_client) -> None:
    extra = """
    [bindings.huge]
    type = "scripted"
    models = ["giant"]
    memory_bytes = { giant = 1000000000000000 }
    """
    async with make_client(extra) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "huge"}
        )
    assert response.status_code == 507
    assert response.json()["error"]["type"] == "insufficient_memory"


def test_preload_must_name_an_instance(make_settings) -> None:
    from lollms_server.errors import ConfigError

    settings = make_settings('[resources]\npreload = ["ghost/m"]\n')
    with pytest.raises(ConfigError) as info:
        create_app(settings)
    assert info.value.key == "resources.preload.0"


@pytest.fixture
def live(tmp_path) -> Iterator[tuple[FastAPI, str]]:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + SLOW.replace("max_queue = 1", "max_queue = 16"))
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


async def _wait_idle(app: FastAPI, timeout: float = 2.0) -> float:
    started = time.perf_counter()
    binding = app.state.bindings.get("slow")
    while time.perf_counter() - started < timeout:
        if app.state.scheduler.active_leases() == 0 and binding.running == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.005)
    raise AssertionError("generation still running after the client left")


@pytest.mark.parametrize("stream", [False, True])
async def test_disconnect_stops_generation_and_frees_the_lease(live, stream: bool) -> None:
    app, url = live
    binding = app.state.bindings.get("slow")
    for _ in range(5):
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=0.2) as client:
            if stream:  # read the first chunk, then hang up
                async with client.stream(
                    "POST",
                    "/api/v1/generate",
                    json={"prompt": "x", "binding_name": "slow", "stream": True},
                ) as response:
                    async for line in response.aiter_lines():
                        if '"chunk"' in line:
                            break
            else:  # give up waiting for the whole answer
                with pytest.raises(httpx.ReadTimeout):
                    await client.post(
                        "/api/v1/generate", json={"prompt": "x", "binding_name": "slow"}
                    )
        elapsed = await _wait_idle(app)
        assert elapsed < 0.1  # stopped within 100 ms of the disconnect
    assert binding.cancelled == 5
    assert app.state.scheduler.active_leases() == 0
    assert app.state.scheduler.status()["queue"]["depth"] == 0


async def test_disconnect_while_queued_leaves_the_queue(live) -> None:
    app, url = live
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
        running = asyncio.create_task(
            client.post("/api/v1/generate", json={"prompt": "x", "binding_name": "slow"})
        )
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.ReadTimeout):
            async with httpx.AsyncClient(
                base_url=url, headers={"X-API-Key": API_KEY}, timeout=0.2
            ) as impatient:
                await impatient.post(
                    "/api/v1/generate", json={"prompt": "y", "binding_name": "slow"}
                )
        await asyncio.sleep(0.1)
        assert app.state.scheduler.status()["queue"]["depth"] == 0
        assert (await running).status_code == 200
    assert app.state.scheduler.active_leases() == 0
