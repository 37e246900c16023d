"""Gateway cost: lollms_server's openai binding in front of an instant OpenAI-compatible
upstream, under 32 concurrent clients; optionally against the binding as it was (the openai
SDK path) and against LiteLLM's proxy in front of the same upstream.

The fake upstream (this file with ``--upstream PORT``, its own process) answers every chat
request at once with a fixed answer: one JSON body, or a stream of 20 content chunks (then a
finish chunk, a usage chunk and ``[DONE]``). The clients run in this process: asyncio with
httptools' C parser on keep-alive sockets, so that they take little of the machine's CPU.
Each gateway serves ``/v1/chat/completions``; a run lasts ``--seconds`` and counts completed
requests and relayed content chunks; the gateway's CPU time (its process and children,
utime + stime from /proc) is read before and after. Runs of the gateways alternate, and
each figure is the median of ``--rounds`` runs (with the spread). It prints figures; it is
not a test.

    .venv/bin/python bench/gateway.py [--seconds 10] [--clients 32] [--rounds 2]
        [--before OLD_OPENAI_BINDING.py]  # git show ea06ee6:src/lollms_server/bindings/openai.py
        [--litellm bench/.venvs/litellm/bin/litellm] [--floor]

``--floor`` adds the floor relay (:class:`FloorRelay`: a bare ASGI app relaying the same
stream with httpx and msgspec, no framework); tests/e2e/test_gateway_ratio.py compares
lollms_server with it per relayed chunk, and bench/compare.py runs this whole workload.
``--before FILE`` loads an older copy of bindings/openai.py as a drop-in binding (renamed
``openai_before``) from a temporary [paths] bindings folder, next to today's binding.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import httptools
import httpx

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
CHUNKS = 20  # content chunks of a stream (and words of a plain answer)
LONG = 100  # a longer stream: the difference gives the cost of one more relayed chunk
WORD = "token "


@dataclass(frozen=True)
class Mode:
    name: str
    stream: bool
    chunks: int


MODES = (Mode("plain", False, CHUNKS), Mode("stream", True, CHUNKS), Mode("long", True, LONG))


# -- the fake upstream ----------------------------------------------------------------------
def _frame(event: bytes) -> bytes:
    """One HTTP/1.1 chunk holding ``event``."""
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "system_fingerprint": "fp_bench",
        "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = usage
    return _frame(b"data: " + json.dumps(body).encode() + b"\n\n")


def _usage(n: int) -> dict[str, int]:
    return {"prompt_tokens": 9, "completion_tokens": n, "total_tokens": 9 + n}


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    + _chunk({"role": "assistant", "content": ""})
)
PIECE = _chunk({"content": WORD})


@functools.cache
def stream_tail(n: int) -> bytes:
    return (
        _chunk({}, "stop")
        + _chunk({}, usage=_usage(n))
        + _frame(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )


@functools.cache
def whole(n: int) -> bytes:
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": WORD * n},
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(n),
        }
    ).encode()
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class Upstream(asyncio.Protocol):
    """Answers each request on a keep-alive connection from canned bytes."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's are no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            match = re.search(rb"content-length: *(\d+)", head)
            size = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + size:
                return
            body = self.buffer[end + 4 : end + 4 + size]
            self.buffer = self.buffer[end + 4 + size :]
            if head.startswith(b"get"):
                models = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
                self._write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(models) + models)
                continue
            asked = re.search(rb'"max_tokens" *: *(\d+)', body)
            n = int(asked.group(1)) if asked else CHUNKS  # the answer's length in chunks
            if re.search(rb'"stream" *: *true', body):
                asyncio.ensure_future(self._stream(n))
            else:
                self._write(whole(n))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def _stream(self, n: int) -> None:
        """``n`` chunks as separate writes, each in its own loop turn (as a real server
        flushes them), but with no delay."""
        self._write(STREAM_HEAD)
        for _ in range(n):
            await asyncio.sleep(0)
            self._write(PIECE)
        self._write(stream_tail(n))


def serve_upstream(port: int) -> None:
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):  # stop() sends SIGINT
        uvloop.run(main())


# -- the floor: the smallest relay of the same stream on the same stack -------------------
class FloorRelay:
    """A pure ASGI app on uvicorn (uvloop, httptools), no framework: each chat request goes
    upstream through one shared httpx client (the binding's HTTP library), each upstream SSE
    event is decoded by msgspec (the binding's JSON library) and re-encoded as one OpenAI
    chunk. What it costs per chunk is what relaying a stream costs on this stack before any
    server adds routing, validation, scheduling or its own event model."""

    def __init__(self, upstream: int) -> None:
        import msgspec

        self.url = f"http://127.0.0.1:{upstream}/v1/chat/completions"
        self.client: httpx.AsyncClient | None = None
        self.decode = msgspec.json.decode
        self.encode = msgspec.json.encode

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            if self.client is not None:
                await self.client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await self._reply(send, 200, b'{"status":"ok"}', b"application/json")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        asked = self.decode(body)
        stream = bool(asked.get("stream"))
        upstream = {
            "model": "m",
            "stream": stream,
            "max_tokens": asked.get("max_tokens"),
            "messages": asked["messages"],
        }
        if stream:
            upstream["stream_options"] = {"include_usage": True}
        if self.client is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
            self.client = httpx.AsyncClient(limits=limits, timeout=60)
        async with self.client.stream("POST", self.url, content=self.encode(upstream)) as answer:
            if not stream:
                data = self.decode(await answer.aread())
                await self._reply(send, 200, self.encode(data), b"application/json")
            else:
                await self._relay(answer, send)

    async def _relay(self, answer: httpx.Response, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        rest = b""
        async for piece in answer.aiter_bytes():
            lines = (rest + piece).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line[:6] != b"data: " or line[6:12] == b"[DONE]":
                    continue
                chunk = self.decode(line[6:])
                out = {
                    "id": "chatcmpl-floor",
                    "object": "chat.completion.chunk",
                    "created": chunk.get("created", 0),
                    "model": "m",
                    "choices": [
                        {
                            "index": c.get("index", 0),
                            "delta": c.get("delta", {}),
                            "finish_reason": c.get("finish_reason"),
                        }
                        for c in chunk.get("choices", ())
                    ],
                }
                if chunk.get("usage"):
                    out["usage"] = chunk["usage"]
                event = b"data: " + self.encode(out) + b"\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})

    @staticmethod
    async def _reply(send: Any, status: int, body: bytes, kind: bytes) -> None:
        headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve_floor(port: int, upstream: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        FloorRelay(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        backlog=1024,
    )
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


# -- the clients ----------------------------------------------------------------------------
@dataclass
class Tally:
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class _Reply:
    """httptools callbacks for one response: its status, body and end."""

    def __init__(self) -> None:
        self.status = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.body = bytearray()
        self.parser: httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        self.body += data

    def on_message_complete(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Client(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self) -> None:
        self.reply: _Reply | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's are no asyncio.Transport
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.parser is not None:
            self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done.done():
            self.reply.done.set_exception(ConnectionError("closed"))

    async def exchange(self, request: bytes) -> _Reply:
        assert self.transport is not None
        self.reply = _Reply()
        self.parser = httptools.HttpResponseParser(self.reply)
        self.reply.parser = self.parser
        self.transport.write(request)
        await self.reply.done
        return self.reply


def _request(port: int, key: str, model: str, mode: Mode) -> bytes:
    body = json.dumps(
        {
            "model": model,
            "stream": mode.stream,
            "max_tokens": mode.chunks,
            "messages": [{"role": "user", "content": "Hi"}],
        }
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _fault(body: bytes, mode: Mode) -> str | None:
    """What is wrong with an answer, if anything."""
    if mode.stream:
        chunks = body.count(WORD.encode())
        if chunks != mode.chunks or b'"error"' in body:
            return f"stream of {chunks} chunks"
    elif WORD.encode() * mode.chunks not in body:
        return "wrong answer"
    return None


async def _client_loop(port: int, request: bytes, stop: float, tally: Tally, mode: Mode) -> None:
    loop = asyncio.get_running_loop()
    client: Client | None = None
    while loop.time() < stop:
        if client is None or client.transport is None or client.transport.is_closing():
            transport, client = await loop.create_connection(Client, "127.0.0.1", port)
            client.transport = transport
        try:
            reply = await client.exchange(request)
        except ConnectionError:
            tally.error("connection closed")
            client = None
            continue
        if reply.status != 200:
            tally.error(f"HTTP {reply.status}")
            continue
        fault = _fault(bytes(reply.body), mode)
        if fault is not None:
            tally.error(fault)
            continue
        tally.requests += 1
    if client is not None and client.transport is not None:
        client.transport.close()


async def load(port: int, key: str, model: str, mode: Mode, clients: int, seconds: float) -> Tally:
    tally = Tally()
    stop = asyncio.get_running_loop().time() + seconds
    request = _request(port, key, model, mode)
    await asyncio.gather(*(_client_loop(port, request, stop, tally, mode) for _ in range(clients)))
    return tally


# -- processes ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stat(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants (LiteLLM runs uvicorn children)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            total += _stat(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def _wait_ready(url: str, proc: subprocess.Popen[bytes], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


@dataclass
class Gateway:
    label: str
    port: int
    key: str
    model: str
    proc: subprocess.Popen[bytes]


def start_lollms(folder: Path, upstream: int, before: Path | None) -> Gateway:
    key = "bench-" + secrets.token_hex(8)
    port = _free_port()
    plugins = folder / "bindings"
    plugins.mkdir(exist_ok=True)
    table = (
        'type = "{kind}"\nbase_url = "http://127.0.0.1:{up}/v1"\napi_key = "sk-bench"\n'
        'models = ["m"]\nmax_concurrency = 256\nmax_retries = 0\n'
    )
    config = (
        f'[server]\nlog_level = "warning"\n\n[[security.api_keys]]\nname = "bench"\n'
        f'key = "{key}"\n\n[paths]\nbindings = "{plugins}"\n\n'
        f"[resources]\nmax_queue = 1024\n\n"
        f"[bindings.up]\n{table.format(kind='openai', up=upstream)}\n"
    )
    if before is not None:
        source = before.read_text(encoding="utf-8").replace(
            'name: ClassVar[str] = "openai"', 'name: ClassVar[str] = "openai_before"'
        )
        (plugins / "openai_before.py").write_text(source, encoding="utf-8")
        config += f"[bindings.before]\n{table.format(kind='openai_before', up=upstream)}\n"
    (folder / "config.toml").write_text(config, encoding="utf-8")
    command = [str(BIN / "lollms-server"), "serve", "--config", str(folder / "config.toml")]
    command += ["--port", str(port), "--log-level", "warning"]
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _wait_ready(f"http://127.0.0.1:{port}/health", proc, {})
    return Gateway("lollms_server", port, key, "up/m", proc)


def start_litellm(folder: Path, upstream: int, litellm: Path) -> Gateway:
    key = "sk-bench-" + secrets.token_hex(8)
    port = _free_port()
    config = folder / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n      api_key: sk-bench\n"
        f"general_settings:\n  master_key: {key}\n"
        "litellm_settings:\n  telemetry: false\n",
        encoding="utf-8",
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    command = [str(litellm), "--config", str(config), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--num_workers", "1"]
    with (folder / "litellm.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    auth = {"Authorization": f"Bearer {key}"}
    _wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc, auth)
    return Gateway("litellm", port, key, "m", proc)


def start_floor(folder: Path, upstream: int) -> Gateway:
    """The floor relay (:class:`FloorRelay`) in its own process."""
    port = _free_port()
    command = [sys.executable, __file__, "--floor-serve", str(port), "--upstream", str(upstream)]
    with (folder / "floor.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _wait_ready(f"http://127.0.0.1:{port}/health", proc, {})
    return Gateway("floor", port, "", "m", proc)


def start_upstream() -> tuple[int, subprocess.Popen[bytes]]:
    """The instant fake upstream in its own process: (its port, the process)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--upstream", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return port, proc
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the fake upstream did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- measuring ------------------------------------------------------------------------------
@dataclass
class Figure:
    rps: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)  # per request
    errors: int = 0

    def line(self, label: str) -> str:
        spread = f"{min(self.cpu_ms):.2f}-{max(self.cpu_ms):.2f}"
        return (
            f"  {label:<28} {median(self.rps):8.1f} req/s  {median(self.cpu_ms):6.2f} ms CPU"
            f"/request ({spread})  errors {self.errors}"
        )


def measure(
    gw: Gateway, model: str, mode: Mode, args: argparse.Namespace
) -> tuple[float, float, Tally]:
    """Requests/s and server CPU ms per request of one run (after a short warm-up)."""
    return measure_run(gw, model, mode, args.clients, args.seconds)


def measure_run(
    gw: Gateway, model: str, mode: Mode, clients: int, seconds: float, warmup: float = 1.0
) -> tuple[float, float, Tally]:
    """Requests/s and server CPU ms per request of one run of ``seconds`` with ``clients``
    (after ``warmup`` seconds with 4 clients: connections, caches)."""
    import uvloop

    if warmup > 0:
        uvloop.run(load(gw.port, gw.key, model, mode, 4, warmup))
    cpu0, t0 = tree_cpu(gw.proc.pid), time.perf_counter()
    tally = uvloop.run(load(gw.port, gw.key, model, mode, clients, seconds))
    cpu, wall = tree_cpu(gw.proc.pid) - cpu0, time.perf_counter() - t0
    return tally.requests / wall, cpu * 1000 / max(tally.requests, 1), tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--floor-serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", type=Path, help="an older bindings/openai.py to compare")
    parser.add_argument("--litellm", type=Path, help="LiteLLM's `litellm` command")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--floor", action="store_true", help="also measure the floor relay (FloorRelay)"
    )
    args = parser.parse_args()
    if args.floor_serve:
        serve_floor(args.floor_serve, args.upstream)
        return
    if args.upstream:
        serve_upstream(args.upstream)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), args)


def run(folder: Path, args: argparse.Namespace) -> tuple[Figures, list[str]]:
    """Start the upstream and the gateways, measure them in turn, print the report; the
    figures by (label, mode) and the labels, lollms_server's first."""
    up_port, upstream = start_upstream()
    procs: list[subprocess.Popen[bytes]] = [upstream]
    try:
        lollms = start_lollms(folder, up_port, args.before)
        procs.append(lollms.proc)
        targets: list[tuple[str, Gateway, str]] = [
            ("lollms_server (openai binding)", lollms, "up/m")
        ]
        if args.before is not None:
            targets.append(("lollms_server (SDK, before)", lollms, "before/m"))
        if args.litellm is not None:
            peer = start_litellm(folder, up_port, args.litellm)
            procs.append(peer.proc)
            targets.append(("LiteLLM proxy (1 worker)", peer, "m"))
        if args.floor:
            floor = start_floor(folder, up_port)
            procs.append(floor.proc)
            targets.append(("floor relay (ASGI+httpx)", floor, "m"))
        figures = _rounds(targets, args)
    finally:
        for proc in reversed(procs):
            stop(proc)
    _report(figures, targets, args)
    return figures, [label for label, _, _ in targets]


Figures = dict[tuple[str, str], Figure]


def _rounds(targets: list[tuple[str, Gateway, str]], args: argparse.Namespace) -> Figures:
    figures: Figures = {}
    for round_ in range(args.rounds):
        for mode in MODES:
            for label, gw, model in targets:
                rps, cpu, tally = measure(gw, model, mode, args)
                figure = figures.setdefault((label, mode.name), Figure())
                figure.rps.append(rps)
                figure.cpu_ms.append(cpu)
                figure.errors += sum(tally.errors.values())
                print(
                    f"round {round_ + 1} {mode.name:<6} {label:<28} {rps:8.1f} req/s "
                    f"{cpu:6.2f} ms CPU/req {tally.errors or ''}",
                    flush=True,
                )
    return figures


def _report(
    figures: Figures, targets: list[tuple[str, Gateway, str]], args: argparse.Namespace
) -> None:
    labels = [label for label, _, _ in targets]
    print(
        f"\n{args.clients} clients, {args.seconds:g} s runs, median of {args.rounds} (CPU spread "
        f"in parentheses); {os.cpu_count()} CPUs; server CPU = the gateway process and children"
    )
    for mode in MODES:
        print(f"{mode.name}: {'streamed' if mode.stream else 'non-streamed'}, {mode.chunks} chunks")
        for label in labels:
            print(figures[(label, mode.name)].line(label))
        _ratios(figures, labels, mode.name)
    print(f"CPU per relayed chunk (long - stream) / {LONG - CHUNKS}:")
    for label in labels:
        long_, short = (median(figures[(label, m)].cpu_ms) for m in ("long", "stream"))
        print(f"  {label:<28} {(long_ - short) / (LONG - CHUNKS) * 1000:7.1f} us")
    if args.json is not None:
        data = {
            f"{label} {mode}": {"rps": f.rps, "cpu_ms_per_request": f.cpu_ms, "errors": f.errors}
            for (label, mode), f in figures.items()
        }
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _ratios(figures: Figures, labels: list[str], mode: str) -> None:
    ours = figures[(labels[0], mode)]
    for other in labels[1:]:
        theirs = figures[(other, mode)]
        cpu = median(theirs.cpu_ms) / median(ours.cpu_ms)
        rps = median(ours.rps) / median(theirs.rps)
        print(
            f"    {labels[0]} vs {other}: 1/{cpu:.1f} of the CPU per request, "
            f"{rps:.2f}x the requests/s"
        )


if __name__ == "__main__":
    main()
