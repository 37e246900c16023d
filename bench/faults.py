"""Load and faults against a real `lollms-server serve` on 127.0.0.1, with scripted bindings.

Phases, each bounded in count and time (the whole run takes about a minute):

1. streams: ``--streams`` concurrent streams on each API (native ``/api/v1/generate``,
   OpenAI ``/v1/chat/completions``, Ollama ``/api/chat``), all at once;
2. cancels: ``--cancels`` clients that read the first chunk of a stream and hang up; then
   ``GET /api/v1/status`` must report 0 active generations;
3. a killed model host: streams on a binding with ``isolation = "process"``, whose host
   process is SIGKILLed in the middle; how fast they end, and whether the next request works;
4. upstream faults for the ``openai`` binding: a local fake upstream that hangs, resets the
   connection, answers garbage JSON, 429 or 500, streamed and not.

Prints, per phase, what completed and what failed (by HTTP status and error type, or the
client's exception), /health latency (p50/p99) polled during the phase, and the RSS of the
server (with its model hosts) before and after. It is not a test.

    .venv/bin/python bench/faults.py [--streams 500] [--cancels 1000] [--host-streams 50]
                                     [--fault-requests 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

KEY = "bench-faults-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
BIN = Path(sys.executable).parent
CHILD_MODULE = "lollms_server.bindings.hosted.child"
REPLY = " ".join(f"word{i}" for i in range(20))
FAULTS = ("hang", "reset", "garbage", "429", "500")
UPSTREAM_TIMEOUT = 2.0  # the openai instances' `timeout` (seconds, per SDK attempt)

CONFIG = """
[server]
log_level = "warning"

[security]
[[security.api_keys]]
name = "bench"
key = "{key}"

[resources]
queue_timeout = 60

[defaults]
ttt_binding = "fake"

[bindings.fake]
type = "scripted"
models = ["m"]
reply = "{reply}"
delay_s = 0.02
max_concurrency = 1024
keep_alive = -1

[bindings.hosted]
type = "scripted"
isolation = "process"
models = ["h"]
reply = "{reply} {reply}"
delay_s = 0.05
max_concurrency = 256
keep_alive = -1
"""

UPSTREAM = """
[bindings.up_{fault}]
type = "openai"
base_url = "http://127.0.0.1:{port}/{fault}/v1"
api_key = "sk-bench"
models = ["m"]
timeout = {timeout}
max_retries = 1
"""


# -- results -------------------------------------------------------------------------------
@dataclass
class Phase:
    """Outcomes of one phase: a kind per request, its wall time, /health latencies."""

    name: str
    outcomes: Counter[str] = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    health: list[float] = field(default_factory=list)
    wall: float = 0.0
    notes: list[str] = field(default_factory=list)

    def report(self) -> None:
        print(f"\n## {self.name}: {sum(self.outcomes.values())} requests in {self.wall:.1f} s")
        for kind, count in sorted(self.outcomes.items(), key=lambda item: item[0] != "completed"):
            print(f"   {count:5d}  {kind}")
        if self.durations:
            print(
                f"   request time p50 {_ms(_pct(self.durations, 50))}, "
                f"p99 {_ms(_pct(self.durations, 99))}, max {_ms(max(self.durations))}"
            )
        if self.health:
            print(
                f"   /health during it: p50 {_ms(_pct(self.health, 50))}, "
                f"p99 {_ms(_pct(self.health, 99))}, max {_ms(max(self.health))} "
                f"({len(self.health)} polls)"
            )
        for note in self.notes:
            print(f"   {note}")


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _error_kind(response: httpx.Response, text: str) -> str:
    try:
        error = json.loads(text).get("error")
    except ValueError:
        return f"HTTP {response.status_code} (not JSON)"
    kind = error.get("type") if isinstance(error, dict) else str(error)[:60]
    return f"HTTP {response.status_code} {kind}"


# -- the server ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(folder: Path, config: str) -> tuple[subprocess.Popen[bytes], str]:
    """`lollms-server serve` on ``config``; returns the process and its base URL."""
    port = free_port()
    path, log = folder / "config.toml", folder / "server.log"
    path.write_text(config, encoding="utf-8")
    command = [str(BIN / "lollms-server"), "serve", "-c", str(path), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not answer /health:\n" + log.read_text(errors="replace"))


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> str:
    """RSS of the server and of its children (model hosts), in MiB."""
    server = psutil.Process(pid)
    children = server.children(recursive=True)
    own = server.memory_info().rss / 2**20
    hosts = sum(c.memory_info().rss for c in children) / 2**20
    return f"server {own:.0f} MiB + {len(children)} child process(es) {hosts:.0f} MiB"


def host_pid(server_pid: int) -> int | None:
    for child in psutil.Process(server_pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if CHILD_MODULE in " ".join(child.cmdline()):
                return int(child.pid)
    return None


# -- the fake upstream ---------------------------------------------------------------------
async def _upstream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One OpenAI-compatible upstream per path prefix: /<fault>/v1/..."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                (
                    int(v)
                    for n, _, v in (h.partition(": ") for h in lines[1:])
                    if n.lower() == "content-length"
                ),
                0,
            )
            await reader.readexactly(length)
            path = lines[0].split(" ")[1]
            if not await _upstream_answer(path, reader, writer):
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _upstream_answer(
    path: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """Answer one request; False when the connection must end (reset, hang)."""
    fault = path.split("/")[1]
    if path.endswith("/models"):
        _respond(writer, 200, json.dumps({"object": "list", "data": [{"id": "m"}]}))
    elif fault == "hang":
        await reader.read()  # never answers; returns when the client gives up
        return False
    elif fault == "reset":
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    elif fault == "garbage":
        _respond(writer, 200, '{"id": "x", "choices": [ {"mess')
    elif fault in ("429", "500"):
        error = {"error": {"message": f"upstream {fault}", "type": "upstream", "code": fault}}
        _respond(writer, int(fault), json.dumps(error), ("Retry-After: 1",))
    else:
        _respond(writer, 404, "{}")
    await writer.drain()
    return True


def _respond(
    writer: asyncio.StreamWriter, status: int, body: str, extra: tuple[str, ...] = ()
) -> None:
    data = body.encode()
    head = [
        f"HTTP/1.1 {status} X",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        *extra,
        "",
        "",
    ]
    writer.write("\r\n".join(head).encode() + data)


# -- clients -------------------------------------------------------------------------------
def poll_health(base: str, stop: Any, out: Any) -> None:
    """In its own process (this one is busy with the load): GET /health every 50 ms until
    ``stop`` is set; the latencies go to ``out``, failures as -1."""
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                http.get("/health").raise_for_status()
                latencies.append(time.perf_counter() - started)
            except httpx.HTTPError:
                latencies.append(-1.0)
            stop.wait(0.05)
    out.send(latencies)


def _native_done(line: str) -> str | None:
    if not line.startswith("data: "):
        return None
    event = json.loads(line[6:])
    if event.get("type") == "final":
        return "completed"
    if event.get("type") == "error":
        return f"stream error {event['error']['type']}"
    return None


def _openai_done(line: str) -> str | None:
    if line == "data: [DONE]":
        return "completed"
    if line.startswith("data: ") and '"error"' in line:
        error = json.loads(line[6:]).get("error") or {}
        return f"stream error {error.get('type') or error.get('code')}"
    return None


def _ollama_done(line: str) -> str | None:
    if not line.strip():
        return None
    record = json.loads(line)
    if "error" in record:
        return f"stream error {str(record['error'])[:50]}"
    return "completed" if record.get("done") else None


@dataclass(frozen=True)
class Api:
    name: str
    path: str
    body: Callable[[str], dict[str, Any]]
    done: Callable[[str], str | None]


def _native_body(instance: str) -> dict[str, Any]:
    return {"prompt": "hi", "binding_name": instance, "stream": True}


def _openai_body(instance: str) -> dict[str, Any]:
    model = f"{instance}/{'h' if instance == 'hosted' else 'm'}"
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}


def _ollama_body(instance: str) -> dict[str, Any]:
    return {"model": f"{instance}/m", "messages": [{"role": "user", "content": "hi"}]}


NATIVE = Api("native /api/v1/generate (SSE)", "/api/v1/generate", _native_body, _native_done)
OPENAI = Api(
    "OpenAI /v1/chat/completions (SSE)", "/v1/chat/completions", _openai_body, _openai_done
)
OLLAMA = Api("Ollama /api/chat (NDJSON)", "/api/chat", _ollama_body, _ollama_done)


async def stream_once(
    client: httpx.AsyncClient, api: Api, instance: str, hang_up: bool = False
) -> str:
    """One streamed request: its outcome kind. ``hang_up``: leave after the first line."""
    try:
        async with client.stream("POST", api.path, json=api.body(instance)) as response:
            if response.status_code != 200:
                return _error_kind(response, (await response.aread()).decode(errors="replace"))
            content = False
            async for line in response.aiter_lines():
                if hang_up and line.strip():
                    return "cancelled after the first line"
                content = content or "word" in line  # the scripted reply's words
                outcome = api.done(line)
                if outcome == "completed" and not content:
                    return "HTTP 200, stream completed with no content"
                if outcome:
                    return outcome
            return "stream ended without a final event"
    except httpx.HTTPError as exc:
        return f"client {type(exc).__name__}"


async def post_once(client: httpx.AsyncClient, instance: str) -> str:
    body = {"model": f"{instance}/m", "messages": [{"role": "user", "content": "hi"}]}
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return f"client {type(exc).__name__}"
    if response.status_code != 200:
        return _error_kind(response, response.text)
    content = response.json()["choices"][0]["message"]["content"]
    return "completed" if content else "HTTP 200 with no content"


async def timed(phase: Phase, work: Awaitable[str]) -> None:
    started = time.perf_counter()
    outcome = await work
    phase.durations.append(time.perf_counter() - started)
    phase.outcomes[outcome] += 1


async def watched(base: str, phase: Phase, works: Sequence[Awaitable[None]]) -> None:
    """Run ``works`` together while another process polls /health; fills the phase's wall
    time and /health latencies."""
    context = multiprocessing.get_context("spawn")
    stop, (receive, send) = context.Event(), context.Pipe(duplex=False)
    poller = context.Process(target=poll_health, args=(base, stop, send), daemon=True)
    poller.start()
    await asyncio.sleep(0.5)  # the poller's interpreter starts before the load
    started = time.perf_counter()
    await asyncio.gather(*works)
    phase.wall = time.perf_counter() - started
    stop.set()
    latencies: list[float] = await asyncio.to_thread(receive.recv)
    poller.join()
    phase.health += [t for t in latencies if t >= 0]
    if len(phase.health) < len(latencies):
        phase.notes.append(f"/health failed {len(latencies) - len(phase.health)} time(s)")


def client(base: str, timeout: float = 60) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    return httpx.AsyncClient(base_url=base, headers=AUTH, timeout=timeout, limits=limits)


# -- phases --------------------------------------------------------------------------------
async def streams(base: str, api: Api, count: int) -> Phase:
    phase = Phase(f"{count} concurrent streams, {api.name}")
    async with client(base) as http:
        await watched(
            base, phase, [timed(phase, stream_once(http, api, "fake")) for _ in range(count)]
        )
    return phase


async def cancels(base: str, count: int, wave: int = 200) -> Phase:
    phase = Phase(f"{count} client cancels (first chunk read, then hang up), waves of {wave}")
    started = time.perf_counter()
    for first in range(0, count, wave):
        async with client(base) as http:  # closing the client closes every connection
            await watched(
                base,
                phase,
                [
                    timed(phase, stream_once(http, NATIVE, "fake", True))
                    for _ in range(min(wave, count - first))
                ],
            )
    phase.wall = time.perf_counter() - started
    phase.notes.append(await settle_active(base))
    return phase


async def settle_active(base: str, limit: float = 10.0) -> str:
    """How long until the status reports no active generation (and an empty queue)."""
    started = time.perf_counter()
    async with client(base) as http:
        while True:
            status = (await http.get("/api/v1/status")).json()
            active, depth = status["active_generations"], status["queue"]["depth"]
            waited = time.perf_counter() - started
            if (active == 0 and depth == 0) or waited > limit:
                return (
                    f"GET /api/v1/status after the cancels: active_generations={active}, "
                    f"queue depth={depth}, {waited * 1000:.0f} ms after the last cancel"
                )
            await asyncio.sleep(0.02)


async def killed_host(base: str, server_pid: int, count: int) -> Phase:
    phase = Phase(f"{count} streams on a process-isolated binding whose host is SIGKILLed")
    async with client(base) as http:
        first = await post_hosted(http)
        pid = host_pid(server_pid)
        if first != "completed" or pid is None:
            phase.notes.append(f"no host process to kill (warm-up: {first})")
            return phase
        killed: list[float] = []
        ends: list[float] = []

        async def one() -> None:
            await timed(phase, stream_once(http, NATIVE, "hosted"))
            ends.append(time.perf_counter())

        async def kill() -> None:
            await asyncio.sleep(0.5)  # the streams have started
            os.kill(pid, signal.SIGKILL)
            killed.append(time.perf_counter())

        await watched(base, phase, [*(one() for _ in range(count)), kill()])
        after = [e - killed[0] for e in ends if e >= killed[0]]
        if after:
            phase.notes.append(
                f"streams ended {_ms(_pct(after, 50))} (p50) / "
                f"{_ms(max(after))} (max) after the kill"
            )
        started = time.perf_counter()
        retry = await post_hosted(http)
        phase.notes.append(
            f"next request: {retry} in {_ms(time.perf_counter() - started)}, "
            f"host pid {pid} -> {host_pid(server_pid)}"
        )
    return phase


async def post_hosted(http: httpx.AsyncClient) -> str:
    body = {"prompt": "hi", "binding_name": "hosted", "parameters": {"max_tokens": 2}}
    try:
        response = await http.post("/api/v1/generate", json=body)
    except httpx.HTTPError as exc:
        return f"client {type(exc).__name__}"
    return "completed" if response.status_code == 200 else _error_kind(response, response.text)


async def upstream_faults(base: str, count: int) -> list[Phase]:
    phases = []
    async with client(base, timeout=30) as http:
        for fault in FAULTS:
            phase = Phase(f"openai binding, upstream '{fault}': {count} plain + {count} streamed")
            instance = f"up_{fault}"
            works = [timed(phase, post_once(http, instance)) for _ in range(count)]
            works += [timed(phase, stream_once(http, OPENAI, instance)) for _ in range(count)]
            await watched(base, phase, works)
            phases.append(phase)
    return phases


# -- main ----------------------------------------------------------------------------------
async def run(args: argparse.Namespace, folder: Path) -> None:
    upstream = await asyncio.start_server(_upstream_handler, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    config = CONFIG.format(key=KEY, reply=REPLY) + "".join(
        UPSTREAM.format(fault=f, port=port, timeout=UPSTREAM_TIMEOUT) for f in FAULTS
    )
    proc, base = await asyncio.to_thread(start_server, folder, config)
    try:
        print(f"server pid {proc.pid} at {base}; RSS before: {rss_mib(proc.pid)}")
        phases = [await streams(base, api, args.streams) for api in (NATIVE, OPENAI, OLLAMA)]
        print(f"RSS after the streams: {rss_mib(proc.pid)}")
        phases.append(await cancels(base, args.cancels))
        phases.append(await killed_host(base, proc.pid, args.host_streams))
        phases += await upstream_faults(base, args.fault_requests)
        for phase in phases:
            phase.report()
        print(f"\nRSS after everything: {rss_mib(proc.pid)}")
    finally:
        await asyncio.to_thread(stop_server, proc)
        upstream.close()
        await asyncio.sleep(0.2)  # the upstream's handlers see their connections end
        report_log((folder / "server.log").read_text(errors="replace"))


def report_log(log: str) -> None:
    """Counts of the server log's lines, tracebacks and errors, and its first errors."""
    errors = [line for line in log.splitlines() if " ERROR " in line]
    print(
        f"server log (warning level): {len(log.splitlines())} lines, "
        f"{log.count('Traceback')} tracebacks, {len(errors)} ERROR lines"
    )
    for line in errors[:5]:
        print(f"   {line[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--cancels", type=int, default=1000)
    parser.add_argument("--host-streams", type=int, default=50)
    parser.add_argument("--fault-requests", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lollms-faults-") as folder:
        asyncio.run(run(args, Path(folder)))
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
