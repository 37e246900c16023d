"""Models in host processes: same answers, real unloads, and crashes that stay contained."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.config import load_config
from tests.conftest import AUTH, BASE_CONFIG
from tests.live import serve_in_thread
from tests.llama_support import MODEL_NAME, needs_llama

HOSTED = """
[bindings.hosted]
type = "scripted"
isolation = "process"
models = ["m"]
reply = "one two three four five six seven eight nine ten"
delay_s = 0.05
keep_alive = 0.3
"""


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[FastAPI, str]]:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + HOSTED)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        yield app, url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}/stat").exists()
        and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    )


async def test_hosted_generation_and_unload_ends_the_process(live) -> None:
    app, url = live
    binding = app.state.bindings.get("hosted")
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "hosted"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["output"][0]["data"].startswith("one two three")
        pid = binding.host_pid("m")
        assert pid is not None and pid != os.getpid() and _alive(pid)
        tokens = await client.post(
            "/api/v1/tokenize", json={"text": "a b a ", "binding_name": "hosted"}
        )
        assert tokens.json()["count"] == 3
        for _ in range(100):  # keep_alive = 0.3 s: the host process exits after that
            if not _alive(pid):
                break
            await asyncio.sleep(0.05)
        assert not _alive(pid)
        assert binding.host_pid("m") is None


async def test_memory_measured_in_the_host_reaches_the_scheduler(tmp_path: Path) -> None:
    """A model whose size is unknown before loading (estimate 0) is counted at what the host
    measured once it is loaded, as it would be inline."""
    path = tmp_path / "config.toml"
    path.write_text(
        BASE_CONFIG
        + HOSTED.replace("keep_alive = 0.3", "keep_alive = 30")
        + "measured_bytes = { m = 123456789 }\n"
    )
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
            response = await client.post(
                "/api/v1/generate", json={"prompt": "x", "binding_name": "hosted"}
            )
            assert response.status_code == 200
            status = (await client.get("/api/v1/status")).json()
    model = next(m for m in status["models"] if m["binding_name"] == "hosted")
    assert model["memory_bytes"] == 123456789
    assert status["devices"]["cpu"]["used_bytes"] == 123456789


async def test_a_dead_host_is_unloaded_at_once(tmp_path: Path) -> None:
    """A host killed while idle: status shows the model unloaded and its memory free without
    any request arriving; the next request loads it again in a new host."""
    path = tmp_path / "config.toml"
    path.write_text(
        BASE_CONFIG
        + HOSTED.replace("keep_alive = 0.3", "keep_alive = 60")
        + "measured_bytes = { m = 5000000 }\n"
    )
    app = create_app(load_config(path))
    binding = app.state.bindings.get("hosted")
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
            body = {"prompt": "x", "binding_name": "hosted"}
            assert (await client.post("/api/v1/generate", json=body)).status_code == 200
            pid = binding.host_pid("m")
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                status = (await client.get("/api/v1/status")).json()
                if not any(m["binding_name"] == "hosted" for m in status["models"]):
                    break
                await asyncio.sleep(0.02)
            assert not any(m["binding_name"] == "hosted" for m in status["models"]), status
            assert status["devices"]["cpu"]["used_bytes"] == 0
            again = await client.post("/api/v1/generate", json=body)
            assert again.status_code == 200, again.text
            assert binding.host_pid("m") not in (None, pid)


async def test_a_hung_host_does_not_hold_its_unload(live, monkeypatch) -> None:
    from lollms_server.bindings.hosted import process

    monkeypatch.setattr(process, "STOP_SECONDS", 0.3)
    app, url = live
    binding = app.state.bindings.get("hosted")
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
        response = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "hosted"}
        )
        assert response.status_code == 200
    pid = binding.host_pid("m")
    os.kill(pid, signal.SIGSTOP)  # hung: alive, answering nothing
    started = time.monotonic()
    for _ in range(100):  # keep_alive 0.3 s, then the unload: killed after its grace
        if not _alive(pid):
            break
        await asyncio.sleep(0.05)
    assert not _alive(pid) and time.monotonic() - started < 3
    assert binding.host_pid("m") is None


async def test_killed_host_fails_its_request_and_the_next_one_works(live) -> None:
    app, url = live
    binding = app.state.bindings.get("hosted")
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
        events = []
        async with client.stream(
            "POST",
            "/api/v1/generate",
            json={"prompt": "x", "binding_name": "hosted", "stream": True, "keep_alive": 60},
        ) as response:
            killed_at = None
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(json.loads(line[6:]))
                if killed_at is None:
                    os.kill(binding.host_pid("m"), signal.SIGKILL)
                    killed_at = time.perf_counter()
            elapsed = time.perf_counter() - killed_at
        assert events[-1]["type"] == "error"
        assert events[-1]["error"]["type"] == "model_host_crashed"
        assert "SIGKILL" in events[-1]["error"]["message"]
        assert elapsed < 1.0  # promptly, not a hung request
        other = await client.post("/api/v1/generate", json={"prompt": "still here"})
        assert other.json()["output"][0]["data"] == "still here"  # the server kept serving
        again = await client.post(
            "/api/v1/generate", json={"prompt": "x", "binding_name": "hosted"}
        )
        assert again.status_code == 200
        assert again.json()["output"][0]["data"].startswith("one two")
    assert app.state.scheduler.active_leases() == 0


@pytest.mark.parametrize("mark", [pytest.param(0, marks=needs_llama)])
async def test_llamacpp_in_a_host_process(tmp_path: Path, mark: int) -> None:
    config = (
        BASE_CONFIG
        + """
[bindings.llm]
type = "llamacpp"
isolation = "process"
n_ctx = 2048
n_parallel = 2
system_prompt = "You are a helpful assistant."
"""
    )
    path = tmp_path / "config.toml"
    path.write_text(config)
    app = create_app(load_config(path))
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120) as client:
            response = await client.post(
                "/api/v1/generate",
                json={
                    "prompt": "What is the capital of France?",
                    "binding_name": "llm",
                    "model_name": MODEL_NAME,
                    "parameters": {"temperature": 0, "max_tokens": 30},
                },
            )
            assert response.status_code == 200, response.text
            assert "Paris" in response.json()["output"][0]["data"]
            pid = app.state.bindings.get("llm").host_pid(MODEL_NAME)
            async with client.stream(
                "POST",
                "/api/v1/generate",
                json={
                    "prompt": "Write a long essay.",
                    "binding_name": "llm",
                    "model_name": MODEL_NAME,
                    "stream": True,
                    "parameters": {"max_tokens": 1500, "ignore_eos": True},
                },
            ) as streamed:
                async for line in streamed.aiter_lines():
                    if '"chunk"' in line:
                        break
            # The cancel reached the host: its CPU use stops growing long before the 1500
            # tokens asked for could have been generated (about 15 s here).
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                before = _cpu(pid)
                await asyncio.sleep(0.5)
                if _cpu(pid) - before < 0.1:
                    break
            assert _cpu(pid) - before < 0.1
    assert not _alive(pid)  # shutdown ended the host


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BLOCKING_PLUGIN = '''
"""A binding whose generation blocks in native-like code that ignores its stop flag."""
import time
from typing import ClassVar

from lollms_server.bindings import (
    Binding, BindingConfig, Finished, ModelInfo, TextDelta, run_stoppable,
)


class BlockingBinding(Binding[BindingConfig]):
    name: ClassVar[str] = "blocking"

    async def list_models(self):
        return [ModelInfo(name="slow")]

    async def load(self, model):
        return None

    async def unload(self, model):
        return None

    async def generate(self, request):
        yield TextDelta("step 1 ")
        await run_stoppable(lambda stop: time.sleep(60))  # one step that cannot be stopped
        yield Finished("stop")
'''


async def test_a_cancelled_step_that_does_not_stop_gets_its_host_killed(tmp_path: Path) -> None:
    """Disconnecting stops the work within cancel_grace whatever the step's length: the host
    is killed, the lease freed, and the next request runs in a new host."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "blocking_binding.py").write_text(BLOCKING_PLUGIN)
    config = BASE_CONFIG.replace("[defaults]", f'[paths]\nbindings = "{plugins}"\n\n[defaults]')
    path = tmp_path / "config.toml"
    path.write_text(
        config
        + '\n[bindings.slow]\ntype = "blocking"\nisolation = "process"\ncancel_grace = 0.5\n'
        + "keep_alive = 60\n"
    )
    app = create_app(load_config(path))
    binding = app.state.bindings.get("slow")
    body = {"prompt": "x", "binding_name": "slow", "stream": True}
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:
            async with client.stream("POST", "/api/v1/generate", json=body) as response:
                async for line in response.aiter_lines():
                    if '"chunk"' in line:
                        break
            pid = binding.host_pid("slow")
            left = time.monotonic()
            while _alive(pid) and time.monotonic() - left < 10:
                await asyncio.sleep(0.05)
            assert not _alive(pid) and time.monotonic() - left < 5
            for _ in range(100):
                if app.state.scheduler.active_leases() == 0:
                    break
                await asyncio.sleep(0.05)
            assert app.state.scheduler.active_leases() == 0
            async with client.stream("POST", "/api/v1/generate", json=body) as again:
                assert again.status_code == 200
                async for line in again.aiter_lines():
                    if '"chunk"' in line:
                        break
            assert binding.host_pid("slow") not in (None, pid)
