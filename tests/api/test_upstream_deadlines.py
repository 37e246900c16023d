"""Upstream deadlines and retries of the openai binding (issue 13, defect 6), against small
raw HTTP servers on 127.0.0.1 that misbehave on purpose: one total deadline per request,
retries only before anything reached the client, and errors that happen before the first
event as HTTP statuses (503), streamed or not."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

MakeClient = Callable[..., httpx.AsyncClient]
# (attempt number from 0, request body) -> what to do with the connection
Script = Callable[[int, dict, asyncio.StreamWriter], Awaitable[None]]


class RawUpstream:
    """An HTTP/1.1 server whose every answer is written by hand by ``script`` (so it may
    hang, stop mid-body or close the socket); counts the requests it got."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._stop = asyncio.Event()
        self._handlers: set[asyncio.Task] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = json.loads(await reader.readexactly(length))
            attempt = len(self.requests)
            self.requests.append(body)
            await self.script(attempt, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        except asyncio.CancelledError:
            pass  # the server stops: a hanging answer ends here
        finally:
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, ready: threading.Event) -> None:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stop.wait()
        server.close()
        for task in list(self._handlers):  # hanging answers end with the server
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    @contextmanager
    def running(self) -> Iterator[str]:
        ready = threading.Event()
        thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._serve(ready),), daemon=True
        )
        thread.start()
        ready.wait(10)
        try:
            yield f"http://127.0.0.1:{self.port}/v1"
        finally:
            self.loop.call_soon_threadsafe(self._stop.set)
            thread.join(10)
            self.loop.close()


def _head(status: int, extra: str = "", sse: bool = False) -> bytes:
    kind = "text/event-stream" if sse else "application/json"
    framing = "Transfer-Encoding: chunked\r\n" if sse else ""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nConnection: close\r\n{extra}{framing}\r\n"
    ).encode()


def _json(status: int, payload: dict, extra: str = "") -> bytes:
    data = json.dumps(payload).encode()
    return _head(status, f"{extra}Content-Length: {len(data)}\r\n") + data


def _sse_chunk(payload: dict | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    event = f"data: {data}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def _delta(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


async def _answer(body: dict, writer: asyncio.StreamWriter, words: list[str]) -> None:
    """A normal answer: streamed as chunks, or one chat.completion."""
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(words)}
        usage = {"prompt_tokens": 3, "completion_tokens": len(words)}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        writer.write(_json(200, {"choices": [choice], "usage": usage}))
        return
    writer.write(_head(200, sse=True))
    for word in words:
        writer.write(_sse_chunk(_delta(word)))
    writer.write(_sse_chunk(_delta("", "stop")) + _sse_chunk("[DONE]") + b"0\r\n\r\n")
    await writer.drain()


def _config(url: str, timeout: float = 1.0, retries: int = 2) -> str:
    return f"""
    [bindings.up]
    type = "openai"
    base_url = "{url}"
    models = ["m"]
    timeout = {timeout}
    max_retries = {retries}
    """


async def _native(client: httpx.AsyncClient, stream: bool) -> httpx.Response:
    body = {"prompt": "hi", "binding_name": "up", "model_name": "m", "stream": stream}
    return await client.post("/api/v1/generate", json=body, timeout=30)


async def _openai(client: httpx.AsyncClient, stream: bool) -> httpx.Response:
    body = {"model": "up/m", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return await client.post("/v1/chat/completions", json=body, timeout=30)


async def _hang(attempt: int, body: dict, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(20)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_hanging_upstream_ends_at_the_deadline(
    make_client: MakeClient, stream: bool
) -> None:
    upstream = RawUpstream(_hang)
    with upstream.running() as url:
        async with make_client(_config(url, timeout=1.0, retries=3)) as client:
            started = time.perf_counter()
            response = await _native(client, stream)
            took = time.perf_counter() - started
    assert response.status_code == 503, response.text
    assert "timeout (1 s)" in response.json()["error"]["message"]
    assert 0.9 < took < 2.5, took
    assert len(upstream.requests) == 1  # the deadline was spent: nothing left to retry in


async def _hang_mid_body(attempt: int, body: dict, writer: asyncio.StreamWriter) -> None:
    writer.write(_head(200, sse=True) + _sse_chunk(_delta("partial ")))
    await writer.drain()
    await asyncio.sleep(20)


async def test_an_upstream_that_stops_mid_answer_is_cut_at_the_deadline(
    make_client: MakeClient,
) -> None:
    upstream = RawUpstream(_hang_mid_body)
    with upstream.running() as url:
        async with make_client(_config(url, timeout=1.0)) as client:
            started = time.perf_counter()
            response = await _openai(client, stream=True)
            took = time.perf_counter() - started
    assert response.status_code == 200  # the partial answer had gone out
    assert "partial " in response.text and "timeout (1 s)" in response.text
    assert 0.9 < took < 2.5, took
    assert len(upstream.requests) == 1


async def _busy_once(attempt: int, body: dict, writer: asyncio.StreamWriter) -> None:
    if attempt % 2 == 0:  # every first try of a request is refused (requests come in pairs)
        writer.write(_json(429, {"error": {"message": "slow down"}}, "Retry-After: 1\r\n"))
        return
    await _answer(body, writer, ["relayed ", "after ", "a retry"])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_429_then_200_succeeds_after_waiting_its_retry_after(
    make_client: MakeClient, stream: bool
) -> None:
    upstream = RawUpstream(_busy_once)
    with upstream.running() as url:
        async with make_client(_config(url, timeout=10.0)) as client:
            started = time.perf_counter()
            response = await _native(client, stream)
            took = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert "relayed after a retry" in response.text.replace('","content":"', "") or (
        response.json()["output"][0]["data"] == "relayed after a retry"
    )
    assert len(upstream.requests) == 2 and took >= 1.0  # the upstream's Retry-After: 1
    assert upstream.requests[1]["stream"] is stream  # a plain client: no upstream stream


async def _always_500(attempt: int, body: dict, writer: asyncio.StreamWriter) -> None:
    writer.write(_json(500, {"error": {"message": "boom"}}))


@pytest.mark.parametrize("call", [_native, _openai])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_that_keeps_failing_gives_503_not_a_200_stream(
    make_client: MakeClient, stream: bool, call: Callable[..., Awaitable[httpx.Response]]
) -> None:
    upstream = RawUpstream(_always_500)
    with upstream.running() as url:
        async with make_client(_config(url, timeout=10.0, retries=2)) as client:
            response = await call(client, stream)
    # The retries (about 0.5 + 1 s of backoff) outlast the stream's usual first-event wait.
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "binding_unavailable"
    assert "answered HTTP 500" in response.json()["error"]["message"]
    assert len(upstream.requests) == 3  # one try and max_retries = 2 retries


async def _breaks_mid_stream(attempt: int, body: dict, writer: asyncio.StreamWriter) -> None:
    writer.write(_head(200, sse=True) + _sse_chunk(_delta("half ")) + _sse_chunk(_delta("an ")))
    await writer.drain()
    writer.transport.abort()  # no end of the chunked body: the connection just goes


async def test_an_upstream_failing_mid_stream_is_not_retried(make_client: MakeClient) -> None:
    upstream = RawUpstream(_breaks_mid_stream)
    with upstream.running() as url:
        async with make_client(_config(url, timeout=10.0, retries=3)) as client:
            response = await _native(client, stream=True)
    assert response.status_code == 200
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line[:6] == "data: "]
    text = "".join(e.get("content", "") for e in events if e["type"] == "chunk")
    assert text == "half an "
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "binding_unavailable"
    assert len(upstream.requests) == 1


async def test_a_refused_connection_is_retried_within_the_deadline(
    make_client: MakeClient,
) -> None:
    upstream = RawUpstream(_hang)
    with upstream.running() as url:
        pass  # now closed: its port refuses connections
    async with make_client(_config(url, timeout=0.8, retries=10)) as client:
        started = time.perf_counter()
        response = await _native(client, stream=True)
        took = time.perf_counter() - started
    assert response.status_code == 503 and "Cannot reach" in response.json()["error"]["message"]
    assert took < 1.5, took  # backoff that would pass the deadline is not waited for
