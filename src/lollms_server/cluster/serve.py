"""``lollms-server serve`` on Ray: the scheduler actor, N API worker actors, a supervisor.

Each API worker is a Ray actor running the whole application (every API, the same keys) in
uvicorn on ``[server] host:port``, its socket bound with ``SO_REUSEPORT`` so the kernel
spreads connections over the workers of one machine. Workers are spread over the nodes;
one that dies is restarted by Ray (``max_restarts=-1``), and the supervisor releases the
leases it held and starts it serving again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from typing import Any

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from lollms_server.cluster.host import parse_host_name
from lollms_server.cluster.runtime import SCHEDULER_NAME, connect
from lollms_server.cluster.scheduler import SchedulerActor
from lollms_server.config import Settings

__all__ = ["ApiWorker", "reuse_port_socket", "run", "start_cluster", "stop_cluster"]

logger = logging.getLogger(__name__)

_WAIT = 0.5  # seconds between supervisor checks


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` that other workers may bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _ApiWorker:
    """The actor's body (wrapped by ``ray.remote`` in ``ApiWorker``)."""

    def __init__(self, settings: Settings, index: int, log_level: str) -> None:
        self.settings = settings
        self.index = index
        self.log_level = log_level

    async def worker_id(self) -> str:
        """How the scheduler actor knows this worker's leases."""
        return f"{os.uname().nodename}:{os.getpid()}"

    async def serve(self) -> None:
        """Run the application until the actor is killed: in a thread of its own, on
        uvicorn's own event loop (uvloop where installed), as a single-process server runs,
        not on the loop Ray keeps for the actor's methods (measured: ~2-3 ms more per
        request there)."""
        import uvicorn

        from lollms_server.app import create_app
        from lollms_server.cli import _setup_logging, _uvicorn_log_config
        from lollms_server.server.connections import raise_open_file_limit, uvicorn_options

        _setup_logging(self.log_level)
        server_settings = self.settings.server
        raise_open_file_limit(server_settings.max_connections)
        config = uvicorn.Config(
            create_app(self.settings),
            log_level=self.log_level,
            log_config=_uvicorn_log_config(),
            timeout_graceful_shutdown=5,
            **uvicorn_options(server_settings),
        )
        sock = reuse_port_socket(server_settings.host, server_settings.port)
        logger.info("API worker %d serving on %s:%d", self.index, *sock.getsockname()[:2])
        await asyncio.to_thread(uvicorn.Server(config).run, sockets=[sock])


ApiWorker: Any = ray.remote(_ApiWorker)


class Cluster:
    """What ``start_cluster`` started: the scheduler actor and the API workers."""

    def __init__(self, settings: Settings, scheduler: Any, workers: list[Any]) -> None:
        self.settings = settings
        self.scheduler = scheduler
        self.workers = workers
        self.ids: list[str] = [""] * len(workers)
        self.running: dict[Any, int] = {}

    def start_worker(self, index: int) -> None:
        worker = self.workers[index]
        self.running[worker.serve.remote()] = index
        try:
            self.ids[index] = ray.get(worker.worker_id.remote(), timeout=60)
        except RayError as exc:
            logger.error("API worker %d did not start: %s", index, exc)

    def supervise_once(self) -> None:
        """Restart the serving of every worker whose serve call ended (the actor died)."""
        ready, _ = ray.wait(list(self.running), num_returns=1, timeout=_WAIT)
        for ref in ready:
            index = self.running.pop(ref)
            try:
                ray.get(ref)
                logger.error("API worker %d stopped serving", index)
            except RayTaskError as exc:
                logger.error("API worker %d failed: %s", index, str(exc).splitlines()[0])
            except RayError as exc:
                logger.error("API worker %d died: %s", index, type(exc).__name__)
            released = ray.get(self.scheduler.release_worker.remote(self.ids[index]))
            if released:
                logger.warning("Released %d lease(s) of API worker %d", released, index)
            self.start_worker(index)


def start_cluster(settings: Settings, log_level: str = "info") -> Cluster:
    """Connect to Ray, start the scheduler actor (on this node) and the API workers."""
    connect(settings.cluster)
    here = ray.get_runtime_context().get_node_id()
    scheduler = SchedulerActor.options(
        name=SCHEDULER_NAME,
        num_cpus=0,
        max_concurrency=100_000,
        max_restarts=-1,  # restarted, it adopts the model hosts (detached) it left running
        max_task_retries=-1,  # calls made while it restarts run on the new one
        scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
    ).remote(settings)
    ray.get(scheduler.start.remote())
    workers = [
        ApiWorker.options(
            name=f"lollms_api_{index}",
            num_cpus=0,
            max_restarts=-1,
            max_concurrency=100_000,
            scheduling_strategy="SPREAD",
            resources=settings.cluster.worker_resources,
        ).remote(settings, index, log_level)
        for index in range(settings.cluster.workers)
    ]
    cluster = Cluster(settings, scheduler, workers)
    for index in range(len(workers)):
        cluster.start_worker(index)
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop the workers, unload every model, and leave Ray (stopping a local instance)."""
    for worker in cluster.workers:
        ray.kill(worker, no_restart=True)
    try:
        ray.get(cluster.scheduler.shutdown.remote(), timeout=60)
    except Exception as exc:
        logger.error("Cluster shutdown: %s", exc)
    ray.kill(cluster.scheduler, no_restart=True)
    _stop_hosts(cluster.settings.cluster.namespace)  # detached: none may outlive the server
    ray.shutdown()


def _stop_hosts(namespace: str) -> None:
    for entry in ray.util.list_named_actors(all_namespaces=True):
        if entry["namespace"] == namespace and parse_host_name(entry["name"]) is not None:
            with contextlib.suppress(Exception):
                ray.kill(ray.get_actor(entry["name"], namespace=namespace), no_restart=True)


def run(settings: Settings, log_level: str) -> None:
    """Serve on the cluster until SIGINT or SIGTERM."""
    if settings.server.port == 0:
        with socket.socket() as probe:
            probe.bind((settings.server.host, 0))
            settings.server.port = probe.getsockname()[1]
    cluster = start_cluster(settings, log_level)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which sets its own
        signal.signal(sig, lambda *_: stop.set())
    logger.info(
        "lollms_server on Ray: %d API worker(s) on %s:%d",
        settings.cluster.workers,
        settings.server.host,
        settings.server.port,
    )
    try:
        while not stop.is_set():
            cluster.supervise_once()
    finally:
        stop_cluster(cluster)
