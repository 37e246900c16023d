"""``lollms-server serve --workers 2`` end to end: a real process starting its own local Ray,
two API workers on one port, the embedded SmolLM2 model hosted once for both, answering
the official openai client through both workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API_KEY, AUTH
from tests.llama_support import LLAMA_CONFIG, LLAMA_DEFAULTS, MODEL_NAME, needs_llama

pytest.importorskip("ray")  # the [cluster] extra (installed by `make test`)
openai = pytest.importorskip("openai")

pytestmark = needs_llama


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    folder = tmp_path_factory.mktemp("workers")
    config = folder / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [server]
            host = "127.0.0.1"

            [security]
            [[security.api_keys]]
            name = "tests"
            key = "{API_KEY}"

            [cluster]
            namespace = "lollms_workers_test"
            """
        )
        + textwrap.dedent(LLAMA_DEFAULTS)
        + textwrap.dedent(LLAMA_CONFIG)
    )
    port = _free_port()
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lollms_server", "serve", "-c", str(config)]
        + ["--port", str(port), "--workers", "2", "--log-level", "info"],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url, proc, folder / "server.log")
        yield url, proc
    finally:
        import psutil

        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        _, alive = psutil.wait_procs(children, timeout=30)
        for child in alive:
            child.kill()
        log.close()
        text = (folder / "server.log").read_text()
        assert "Traceback" not in text, text[-3000:]
        assert code == 0, f"exit code {code}: " + text[-3000:]  # a clean stop on SIGTERM
        assert not alive, f"left running after the server stopped: {alive}"


def _wait(url: str, proc: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve --workers 2 did not answer /health: " + log.read_text()[-3000:])


def test_two_workers_answer_with_the_real_model_loaded_once(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    url, _ = server
    for _ in range(8):  # one client per request: new connections reach both workers
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)
        reply = client.chat.completions.create(
            model=f"llm/{MODEL_NAME}",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            temperature=0,
        )
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens > 0
        client.close()
    status = httpx.get(f"{url}/api/v1/status", headers=AUTH, timeout=30).json()
    assert len([w for w in status["workers"] if w["leases_granted"]]) == 2, status["workers"]
    loaded = [m for m in status["models"] if m["model_name"] == MODEL_NAME]
    assert len(loaded) == 1 and loaded[0]["status"] == "loaded"
    assert status["nodes"] and status["nodes"][0]["devices"]


def test_a_streamed_answer_through_a_worker(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model=f"llm/{MODEL_NAME}",
        messages=[{"role": "user", "content": "Count to five."}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text.strip()


def test_keys_are_checked_by_every_worker(server: tuple[str, subprocess.Popen[str]]) -> None:
    url, _ = server
    for _ in range(8):
        with httpx.Client(base_url=url) as client:  # a new connection each time
            assert client.get("/v1/models").status_code == 401
            assert (
                client.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )


def test_the_local_ray_instance_listens_on_loopback_only(
    server: tuple[str, subprocess.Popen[str]],
) -> None:
    """Nothing of the cluster (GCS, raylet, workers, agents) is reachable from the network."""
    import ipaddress

    import psutil

    _, proc = server
    tree = {proc.pid} | {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
    assert len(tree) > 4  # the driver, Ray's GCS and raylet, the actors...
    exposed = [
        (c.pid, c.laddr)
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
        and c.pid in tree
        and not ipaddress.ip_address(c.laddr.ip.removeprefix("::ffff:")).is_loopback
    ]
    assert not exposed, exposed
