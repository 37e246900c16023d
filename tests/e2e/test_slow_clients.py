"""Slow and idle clients against the real `lollms-server serve` process: hundreds of stalled
request heads and bodies are closed within their deadlines while /health stays fast."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, AUTH

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
MARGIN = 2.0  # scheduling slack on a busy 2-core machine
STALLED = 250  # connections per scenario: a few hundred, not five

CONFIG = f"""
[server]
header_timeout = {HEADER_TIMEOUT}
body_timeout = {BODY_TIMEOUT}
max_header_bytes = 8192
max_connections = {{max_connections}}

[security]
[[security.api_keys]]
name = "tests"
key = "{API_KEY}"

[defaults]
ttt_binding = "fake"

[bindings.fake]
type = "scripted"
models = ["scripted-model"]
reply = "one two three"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, max_connections: int) -> Iterator[str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(max_connections=max_connections))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "LOLLMS_CONFIG": str(config)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "server did not answer /health"
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert "Traceback" not in out, out[-3000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serve(tmp_path_factory.mktemp("slow_clients"), max_connections=1024)


async def _stall(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload``, then nothing: what the server answered, and when it closed (s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(payload)
    try:
        answer = await asyncio.wait_for(reader.read(), HEADER_TIMEOUT + BODY_TIMEOUT + 10)
    except (ConnectionError, asyncio.TimeoutError):
        answer = b"<reset or still open>"
    closed = time.perf_counter() - started
    writer.close()
    return answer, closed


async def _drip(port: int, head: bytes, seconds: float) -> tuple[bytes, float]:
    """Send ``head``, then one byte every 0.2 s for ``seconds``: the client is never idle
    long, yet never done. Returns the first bytes answered (it stops writing then: a byte
    sent after the server closed would reset the connection and lose the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(head)
    read = asyncio.ensure_future(reader.read(65536))
    try:
        while not read.done() and time.perf_counter() - started < seconds:
            await asyncio.sleep(0.2)
            writer.write(b"a")
        answer = await asyncio.wait_for(read, 10)
    except (ConnectionError, asyncio.TimeoutError):
        answer = b"<reset or still open>"
    closed = time.perf_counter() - started
    read.cancel()
    writer.close()
    return answer, closed


async def _health_latencies(url: str, until: asyncio.Future[Any]) -> list[float]:
    """/health latencies, polled every 50 ms until ``until`` is done. This process opens the
    stalled connections too: polling starts once they are open, so that a latency is the
    server's, not this event loop's."""
    latencies: list[float] = []
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(base_url=url) as client:
        while not until.done():
            started = time.perf_counter()
            assert (await client.get("/health")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
    return latencies


Outcome = tuple[bytes, float]  # what the server answered, and when it closed (s)


async def _under_watch(
    url: str, work: Sequence[asyncio.Future[Outcome]]
) -> tuple[list[Outcome], list[float]]:
    """The outcomes of ``work``, and /health latencies polled while it ran."""
    everything = asyncio.gather(*work)
    latencies = await _health_latencies(url, everything)
    return await everything, latencies


def _assert_fast(latencies: list[float]) -> None:
    """/health stayed fast: most polls in under 100 ms, none over a second (the test
    process itself shares two cores with the server)."""
    ordered = sorted(latencies)
    assert len(ordered) >= 5, ordered
    assert ordered[len(ordered) // 2] < 0.1 and ordered[-1] < 1.0, ordered


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_stalled_request_heads_are_closed_within_the_header_timeout(server: str) -> None:
    port = _port(server)
    payloads = [
        b"",  # connects, never sends a byte
        b"GET /hea",  # half a request line
        b"POST /api/v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: app",  # half the headers
    ]
    work = [asyncio.ensure_future(_stall(port, payloads[i % 3])) for i in range(STALLED)]
    work += [
        asyncio.ensure_future(_drip(port, b"GET /health HTTP/1.1\r\nX-Slow: ", 2 * HEADER_TIMEOUT))
        for _ in range(20)
    ]
    results, latencies = await _under_watch(server, work)
    for index, (answer, closed) in enumerate(results):
        assert closed < HEADER_TIMEOUT + MARGIN, (index, answer, closed)
        silent = index < STALLED and index % 3 == 0
        assert answer == b"" if silent else answer.startswith(b"HTTP/1.1 408 "), (index, answer)
    assert b'"type": "request_timeout"' in results[1][0]
    _assert_fast(latencies)


async def test_slow_bodies_get_408_within_the_body_timeout(server: str) -> None:
    port = _port(server)
    head = (
        f"POST /api/v1/generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    work = [asyncio.ensure_future(_stall(port, head + b'{"prompt": ')) for _ in range(STALLED)]
    work += [asyncio.ensure_future(_drip(port, head, 2 * BODY_TIMEOUT)) for _ in range(20)]
    results, latencies = await _under_watch(server, work)
    for index, (answer, closed) in enumerate(results):
        assert answer.startswith(b"HTTP/1.1 408 "), (index, answer)
        assert b"body_timeout" in answer
        assert closed < BODY_TIMEOUT + MARGIN, (index, closed)
    _assert_fast(latencies)


async def test_normal_requests_still_work(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers=AUTH, timeout=30) as client:
        for _ in range(3):  # one keep-alive connection, idle between requests
            response = await client.post("/api/v1/generate", json={"prompt": "hi"})
            assert response.status_code == 200, response.text
            await asyncio.sleep(HEADER_TIMEOUT + 0.3)  # idle is keep_alive_timeout's business
        big = {"prompt": "hi", "user_name": "x" * 1_000_000}  # a 1 MB body, sent at once
        assert (await client.post("/api/v1/generate", json=big)).status_code in (200, 400, 422)
        huge = await client.get("/health", headers={"X-Big": "b" * 20_000})
        assert huge.status_code == 431
        assert huge.json()["error"]["type"] == "request_header_fields_too_large"


def test_idle_keep_alive_connections_make_room_for_new_clients(tmp_path: Path) -> None:
    """max_connections = 20, held by 20 idle keep-alive clients: a new client is served
    (the longest idle connection is closed), not refused with 503."""
    for url in _serve(tmp_path, max_connections=20):
        idle = [httpx.Client(base_url=url) for _ in range(20)]
        try:
            for client in idle:
                assert client.get("/health").status_code == 200  # then stays open, idle
            for _ in range(5):
                with httpx.Client(base_url=url) as newcomer:
                    assert newcomer.get("/health").status_code == 200
        finally:
            for client in idle:
                client.close()
