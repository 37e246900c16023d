"""Ray itself: connecting to (or starting) it, and the nodes with the memory they offer."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import ray

from lollms_server.config import ClusterSettings
from lollms_server.resources.memory import parse_size

__all__ = ["SCHEDULER_NAME", "NodeInfo", "alive_nodes", "connect"]

logger = logging.getLogger(__name__)

SCHEDULER_NAME = "lollms_scheduler"


@dataclass(frozen=True)
class NodeInfo:
    """One alive Ray node and the memory budgets it offers the scheduler (bytes)."""

    node_id: str
    address: str
    system_memory: int
    gpu_memory: int

    @property
    def short(self) -> str:
        """The id's first 8 characters: how budgets and logs name the node."""
        return self.node_id[:8]


def connect(cluster: ClusterSettings) -> None:
    """Join the configured Ray cluster, or start a local one (loopback only, no dashboard
    unless configured). Idempotent within a process."""
    if ray.is_initialized():
        return
    options: dict[str, Any] = {
        "namespace": cluster.namespace,
        "log_to_driver": True,
        "configure_logging": False,
    }
    if cluster.address == "local":
        options.update(
            include_dashboard=cluster.dashboard,
            dashboard_host="127.0.0.1",
            _node_ip_address="127.0.0.1",
        )
    else:
        options["address"] = cluster.address
    ray.init(**options)
    logger.info("Connected to Ray (%s), namespace '%s'", cluster.address, cluster.namespace)


def alive_nodes(cluster: ClusterSettings) -> list[NodeInfo]:
    """The nodes Ray reports alive, with their system and GPU memory budgets."""
    out = []
    fixed = None if cluster.node_memory == "auto" else parse_size(cluster.node_memory)
    for node in ray.nodes():  # type: ignore[no-untyped-call]
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        out.append(
            NodeInfo(
                node_id=node["NodeID"],
                address=str(node.get("NodeManagerAddress", "")),
                system_memory=fixed if fixed is not None else int(resources.get("memory", 0)),
                gpu_memory=int(resources.get(cluster.gpu_memory_resource, 0)),
            )
        )
    return out
