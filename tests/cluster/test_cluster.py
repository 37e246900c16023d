"""The server on a real multi-node Ray cluster (``ray.cluster_utils.Cluster`` on this machine).

Nodes: a head (the scheduler actor and the API workers), node A with 1.2 GB of "GPU memory"
and node B with 3 GB (``gpu_memory`` custom resources: no real GPU needed). Models are the
scripted binding's, placed on ``gpu:0`` with configured sizes, so placement and eviction are
exactly predictable. One cluster and one served application for the module; the test that
removes a node runs last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

ray = pytest.importorskip("ray")  # the [cluster] extra (installed by `make test`)

from ray.cluster_utils import Cluster  # noqa: E402

from lollms_server.cluster.serve import Cluster as Served  # noqa: E402
from lollms_server.cluster.serve import start_cluster  # noqa: E402
from lollms_server.config import load_config  # noqa: E402
from tests.conftest import API_KEY, AUTH  # noqa: E402

GB = 1_000_000_000
NAMESPACE = "lollms_tests"

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[security]
[[security.api_keys]]
name = "tests"
key = "{key}"

[defaults]
ttt_binding = "gpu"

[resources]
safety_margin = 0

[cluster]
address = "{address}"
workers = 2
namespace = "{namespace}"
batch_events = 8
worker_resources = {{ api = 0.01 }}  # API workers on the head, never on a removed node

[bindings.gpu]
type = "scripted"
device = "gpu:0"
models = ["big", "big2", "small", "huge"]
reply = "one two three four five six seven eight"
memory_bytes = {{ big = 2000000000, big2 = 2000000000, small = 500000000, huge = 5000000000 }}

[bindings.rep]
type = "scripted"
models = ["r"]
reply = "a b c d e f g h i j"
delay_s = 0.1
max_concurrency = 1
replicas = 2
memory_bytes = {{ r = 1000000 }}

[bindings.slow]
type = "scripted"
device = "gpu:0"
models = ["slow"]
reply = "{slow_reply}"
delay_s = 0.2
max_concurrency = 1
memory_bytes = {{ slow = 2500000000 }}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


NODES: dict[str, Any] = {}  # "a", "b": the ray.cluster_utils nodes of the module's cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nodes = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "resources": {"api": 1},
            # Node loss is noticed within a second (Ray's default is tens of seconds).
            "_system_config": {
                "health_check_initial_delay_ms": 0,
                "health_check_period_ms": 200,
                "health_check_failure_threshold": 2,
            },
        },
    )
    NODES["a"] = nodes.add_node(num_cpus=1, resources={"gpu_memory": 1.2 * GB, "node_a": 1})
    NODES["b"] = nodes.add_node(num_cpus=1, resources={"gpu_memory": 3 * GB, "node_b": 1})
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, namespace=NAMESPACE)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.fixture(scope="module")
def served(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Served]]:
    port = _free_port()
    path = Path(tmp_path_factory.mktemp("cluster")) / "config.toml"
    path.write_text(
        textwrap.dedent(
            CONFIG.format(
                port=port,
                key=API_KEY,
                address=cluster.address,
                namespace=NAMESPACE,
                slow_reply=" ".join(["word"] * 100),
            )
        )
    )
    handle = start_cluster(load_config(path), "warning")
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url)
    stop = threading.Event()
    supervisor = threading.Thread(target=_supervise, args=(handle, stop), daemon=True)
    supervisor.start()  # what `serve` runs: replaces dead workers, releases their leases
    try:
        yield url, handle
    finally:
        stop.set()
        supervisor.join(timeout=10)
        for worker in handle.workers:
            ray.kill(worker, no_restart=True)
        ray.get(handle.scheduler.shutdown.remote(), timeout=60)
        ray.kill(handle.scheduler, no_restart=True)


def _supervise(handle: Served, stop: threading.Event) -> None:
    while not stop.is_set():
        handle.supervise_once()


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("the cluster's API workers did not answer /health")


def _chat(url: str, model: str, **extra: Any) -> httpx.Response:
    body = {
        "model": model if "/" in model else f"gpu/{model}",
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:  # a new connection
        return client.post("/v1/chat/completions", json=body)


def _status(url: str) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/status", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _node_named(resource: str) -> str:
    for node in ray.nodes():
        if node["Alive"] and resource in node["Resources"]:
            return str(node["NodeID"][:8])
    raise AssertionError(f"no alive node has {resource}")


def _where(status: dict[str, Any], model: str) -> str | None:
    for entry in status["models"]:
        if entry["model_name"] == model and entry["status"] == "loaded":
            return str(entry["node"])
    return None


def test_models_are_placed_on_the_node_with_room_and_evicted_per_node(
    served: tuple[str, Served],
) -> None:
    url, _ = served
    node_a = _node_named("node_a")
    node_b = _node_named("node_b")
    assert _chat(url, "big").json()["choices"][0]["message"]["content"].startswith("one two")
    status = _status(url)
    assert _where(status, "big") == node_b  # 2 GB fits only B (3 GB)
    assert {n["name"] for n in status["nodes"]} >= {node_a, node_b}
    assert status["devices"][f"{node_b}/gpu:0"]["used_bytes"] == 2 * GB

    assert _chat(url, "small").status_code == 200
    assert _where(_status(url), "small") == node_a  # A has the most free memory (1.2 > 1 GB)

    assert _chat(url, "big2").status_code == 200  # fits nowhere free: idle big is evicted on B
    status = _status(url)
    assert _where(status, "big2") == node_b
    assert _where(status, "big") is None
    assert _where(status, "small") == node_a  # the other node was not touched


def test_metrics_and_cluster_status_show_nodes_devices_and_where_models_run(
    served: tuple[str, Served], cluster: Cluster, tmp_path: Path
) -> None:
    url, _ = served
    node_b = _node_named("node_b")
    metrics = httpx.get(f"{url}/metrics", headers=AUTH, timeout=30).text
    assert f'lollms_device_memory_bytes{{device="{node_b}/gpu:0",kind="budget"}} 3e+09' in metrics
    assert f'lollms_model_loaded{{binding="gpu",device="{node_b}/gpu:0",model="big2"}}' in metrics
    assert "lollms_cluster_nodes 3.0" in metrics
    config = tmp_path / "config.toml"
    config.write_text(f'[cluster]\nnamespace = "{NAMESPACE}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "lollms_server", "cluster", "status", "-c", str(config)]
        + ["--address", cluster.address],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nodes: 3" in out.stdout
    assert f"    {node_b}/gpu:0: 1.9 GiB used of 2.8 GiB" in out.stdout
    assert f"  gpu/big2: loaded on {node_b}/gpu:0" in out.stdout


def test_a_model_that_fits_no_node_is_a_507_naming_the_largest_device(
    served: tuple[str, Served],
) -> None:
    url, _ = served
    response = _chat(url, "huge")
    assert response.status_code == 507
    error = response.json()["error"]
    assert error["type"] == "insufficient_memory"
    assert f"{_node_named('node_b')}/gpu:0" in error["message"]
    assert "largest" in error["message"]


def test_both_workers_serve_one_shared_host_per_model(served: tuple[str, Served]) -> None:
    url, _ = served
    for _ in range(16):  # new connections: the kernel spreads them over the two workers
        response = _chat(url, "small")
        assert response.status_code == 200
    status = _status(url)
    assert len([w for w in status["workers"] if w["leases_granted"]]) == 2
    assert [m["model_name"] for m in status["models"]].count("small") == 1
    hosts = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("lollms_host:gpu/small")
    ]
    assert len(hosts) == 1, hosts  # one host for the cluster, not one per worker


def test_a_busy_model_grows_a_replica_and_requests_spread_over_the_copies(
    served: tuple[str, Served],
) -> None:
    url, _ = served
    body = {"model": "rep/r", "messages": [{"role": "user", "content": "hi"}]}

    def ask() -> str:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])

    assert ask() == "a b c d e f g h i j"  # one copy, loaded on demand
    copies = [m for m in _status(url)["models"] if m["binding_name"] == "rep"]
    assert [m["model_name"] for m in copies if m["status"] == "loaded"] == ["r"]
    with ThreadPoolExecutor(4) as pool:  # one slot per copy: a second copy is grown
        answers = list(pool.map(lambda _: ask(), range(4)))
    assert answers == ["a b c d e f g h i j"] * 4
    copies = [m for m in _status(url)["models"] if m["binding_name"] == "rep"]
    loaded = {m["model_name"]: m["node"] for m in copies if m["status"] == "loaded"}
    assert set(loaded) == {"r", "r#r1"}, copies
    assert len(set(loaded.values())) == 2  # copies spread over nodes
    hosts = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith("lollms_host:rep/")
    ]
    assert len(hosts) == 2, hosts
    unload = {"model": "rep/r"}
    response = httpx.post(f"{url}/api/v1/models/unload", json=unload, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    copies = [m for m in _status(url)["models"] if m["binding_name"] == "rep"]
    assert not [m for m in copies if m["status"] != "unloaded"], copies  # every copy


def test_streaming_batches_arrive_in_order(served: tuple[str, Served]) -> None:
    url, _ = served
    body = {
        "model": "gpu/small",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    with (
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        text = "".join(response.iter_text())
    assert response.status_code == 200
    import json

    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in text.splitlines()
        if line.startswith("data: {")
    ]
    assert "".join(pieces) == "one two three four five six seven eight"


def test_a_client_that_leaves_the_cluster_queue_leaves_no_lease(
    served: tuple[str, Served],
) -> None:
    url, _ = served
    slow = {"model": "slow/slow", "messages": [{"role": "user", "content": "hi"}]}
    with (
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json={**slow, "stream": True}) as held,
    ):
        assert held.status_code == 200  # holds the model's only slot for ~20 s
        chunks = held.iter_text()  # kept: a dropped iterator closes the response
        next(chunks)
        with pytest.raises(httpx.ReadTimeout):  # queued behind it, then gone
            httpx.post(f"{url}/v1/chat/completions", json=slow, headers=AUTH, timeout=1.0)
        time.sleep(0.5)
        queued = next(m for m in _status(url)["models"] if m["model_name"] == "slow")
        assert queued["queued"] == 0 and queued["active_generations"] == 1, queued
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the held stream's slot comes back too
        status = _status(url)
        state = next(m for m in status["models"] if m["model_name"] == "slow")
        if state["active_generations"] == 0:
            break
        time.sleep(0.2)
    assert state["active_generations"] == 0, status
    assert not any(w["leases_active"] for w in status["workers"]), status["workers"]


def test_a_worker_that_dies_mid_stream_is_replaced_and_its_lease_released(
    served: tuple[str, Served],
) -> None:
    url, _ = served
    slow = {"model": "slow/slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    before = {w["worker"] for w in _status(url)["workers"]}
    killed = False
    with (
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=slow) as response,
    ):
        assert response.status_code == 200
        with contextlib.suppress(httpx.HTTPError):  # the connection breaks with its worker
            for chunk in response.iter_text():
                if not killed and '"content"' in chunk:
                    holder = next(w for w in _status(url)["workers"] if w["leases_active"])
                    os.kill(int(holder["worker"].rpartition(":")[2]), signal.SIGKILL)
                    killed = True
    assert killed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = _status(url)
        slow_state = next(m for m in status["models"] if m["model_name"] == "slow")
        if (
            not any(w["leases_active"] for w in status["workers"])
            and not (slow_state["active_generations"])
        ):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the dead worker's lease was not released: {status}")
    for _ in range(40):  # the replacement serves too
        assert _chat(url, "small").status_code == 200
        workers = {w["worker"] for w in _status(url)["workers"] if w["leases_granted"]}
        if workers - before:
            break
    assert workers - before, "no new worker served after the death"


def test_a_restarted_scheduler_adopts_the_running_hosts_keeps_pins_and_leaks_no_lease(
    served: tuple[str, Served],
) -> None:
    url, handle = served
    pin = {"model": "gpu/small", "pinned": True}
    assert httpx.post(f"{url}/api/v1/models/pin", json=pin, headers=AUTH).status_code == 200
    body = {
        "model": "slow/slow",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": 12,
    }

    def hosts() -> set[str]:
        return {
            a["name"]
            for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("lollms_host:")
        }

    words, restarted = [], False
    with (
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                if delta:
                    words.append(delta)
                if delta and not restarted:
                    before = hosts()
                    ray.kill(handle.scheduler, no_restart=False)  # Ray restarts it
                    restarted = True
    assert restarted and "".join(words).split() == ["word"] * 12  # the stream went on
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        models = {m["model_name"]: m for m in _status(url)["models"]}
        if "slow" in models and not models["slow"]["active_generations"]:
            break
        time.sleep(0.2)
    assert models["slow"]["status"] == "loaded", models["slow"]  # adopted, not reloaded
    assert models["slow"]["active_generations"] == 0  # its lease ended with the stream
    assert models["small"]["status"] == "loaded" and models["small"]["pinned"]  # kept
    assert hosts() == before  # the same hosts, none started again
    assert _chat(url, "slow/slow", max_tokens=2).status_code == 200
    assert hosts() == before
    unpin = {"model": "gpu/small", "pinned": False}
    assert httpx.post(f"{url}/api/v1/models/pin", json=unpin, headers=AUTH).status_code == 200


def _host_actor(prefix: str) -> Any:
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(prefix)
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace=NAMESPACE)


def _exchange(address: str, hello: bytes, message: dict[str, Any]) -> bytes:
    """What a channel answers (its welcome and first reply) to ``hello`` and ``message``."""
    host, _, port = address.rpartition(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(hello + json.dumps(message).encode() + b"\n")
        while data.count(b"\n") < 2:
            chunk = sock.recv(65536)
            if not chunk:  # closed by the channel
                break
            data += chunk
    return data


def _welcomed(data: bytes) -> dict[str, Any]:
    welcome, reply = data.split(b"\n")[:2]
    assert welcome == b"ok"
    return dict(json.loads(reply))


def test_leases_and_streams_take_the_direct_channels(served: tuple[str, Served]) -> None:
    url, _ = served
    for _ in range(16):  # new connections: both workers serve some
        assert _chat(url, "small", stream=True).status_code == 200
    channels = _status(url)["worker"]["channels"]
    assert channels["scheduler"] == "direct"
    assert channels["hosts_direct"] >= 1
    assert channels["hosts_ray"] == 0


def test_channels_listen_on_the_node_address_check_the_secret_and_serve_only_their_calls(
    served: tuple[str, Served],
) -> None:
    url, handle = served
    assert _chat(url, "small").status_code == 200
    info = ray.get(handle.scheduler.channel_info.remote())
    here = ray.util.get_node_ip_address()  # the driver runs on the head, like the scheduler
    assert info["address"].rpartition(":")[0] == here
    wrong = b"x" * len(info["secret"]) + b"\n"
    right = info["secret"].encode() + b"\n"
    assert _exchange(info["address"], wrong, {"op": "status", "id": 1}) == b""  # just closed
    reply = _welcomed(_exchange(info["address"], right, {"op": "status", "id": 1}))
    assert reply["error"]["message"] == "RuntimeError: operation 'status' is not served here"

    where = ray.get(_host_actor("lollms_host:gpu/small#").describe.remote())
    node = next(n for n in ray.nodes() if n["NodeID"] == where["node_id"])
    assert where["channel"].rpartition(":")[0] == node["NodeManagerAddress"]
    unload = {"op": "unload", "id": 1, "model": "small"}
    assert _exchange(where["channel"], wrong, unload) == b""
    reply = _welcomed(_exchange(where["channel"], right, unload))
    assert reply["error"]["message"] == "RuntimeError: operation 'unload' is not served here"
    assert _where(_status(url), "small") is not None  # still loaded


@pytest.mark.parametrize("case", ["closed port", "wrong secret"])
def test_a_host_whose_channel_cannot_be_used_streams_over_ray(
    served: tuple[str, Served], case: str
) -> None:
    import asyncio

    from lollms_server.bindings.events import TextDelta
    from lollms_server.bindings.types import BindingRequest, Message
    from lollms_server.cluster.host import RayHost

    url, _ = served
    assert _chat(url, "small").status_code == 200
    actor = _host_actor("lollms_host:gpu/small#")
    address = ray.get(actor.describe.remote())["channel"]
    if case == "closed port":
        address = f"127.0.0.1:{_free_port()}"
    host = RayHost.attach("gpu/small", actor, 4, address, "not-the-secret")
    request = BindingRequest(model="small", messages=(Message(role="user", content="hi"),))

    async def run() -> str:
        events = [event async for event in host.stream(request, 5.0)]
        return "".join(e.text for e in events if isinstance(e, TextDelta))

    assert asyncio.run(run()) == "one two three four five six seven eight"
    assert host.address is None  # it fell back to Ray, for good


def test_a_node_lost_mid_stream_fails_its_stream_within_a_second_and_the_model_moves(
    served: tuple[str, Served], cluster: Cluster
) -> None:
    """Last in the module: it removes node B."""
    url, _ = served
    node_b = _node_named("node_b")
    # 2.5 GB: only B can hold it (after evicting big2, idle). One word per 0.2 s.
    slow = {"model": "slow/slow", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    started = lost = 0.0
    text = ""
    with (
        httpx.Client(base_url=url, headers=AUTH, timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=slow) as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_text():
            text += chunk
            if started == 0.0 and '"content"' in text:
                assert _where(_status(url), "slow") == node_b
                started = time.monotonic()
                cluster.remove_node(NODES["b"], allow_graceful=False)
        lost = time.monotonic()
    assert "model_host_crashed" in text, text[-500:]
    assert lost - started < 1.0, f"the stream ended {lost - started:.2f} s after the loss"
    # A new node with room joins: the next request re-places the model there.
    cluster.add_node(num_cpus=1, resources={"gpu_memory": 3 * GB, "node_c": 1})
    cluster.wait_for_nodes()
    time.sleep(1.5)  # the scheduler reads the node list every second
    response = _chat(url, "slow/slow", max_tokens=3)
    assert response.status_code == 200, response.text
    assert _where(_status(url), "slow") == _node_named("node_c")
