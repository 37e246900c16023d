"""Scale-out on Ray: API workers and model hosts across processes and machines.

Nothing here is imported unless ``[cluster] address`` is set (or ``serve --cluster``): the
single-process server never imports Ray. The pieces:

* ``host`` — a model host is a Ray actor placed on the node the scheduler chose
  (``ModelHostActor``); ``RayHostedBinding`` wraps any binding so that its models run there;
* ``scheduler`` — ``SchedulerActor``, a named actor, owns the one ``Scheduler`` of the
  cluster (memory per node and device, queue, keep-alive, eviction, pinning);
* ``client`` — ``RemoteScheduler``, what each API worker uses in place of a local scheduler;
* ``runtime`` — connecting to (or starting) Ray, the nodes and their budgets;
* ``serve`` — ``lollms-server serve --workers N --cluster ADDRESS``: the supervisor of the
  API worker actors.
"""

from __future__ import annotations

import os

__all__ = ["prepare_environment"]

# Ray resolves "127.0.0.1" to the machine's network address (so other machines can join) and
# then listens on every interface, unless told that this is a single-machine instance.
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def prepare_environment(address: str | None) -> None:
    """Before Ray is imported: a ``local`` instance listens on loopback only (its GCS,
    raylet, workers and agents), and its processes inherit that setting."""
    if address == "local":
        os.environ.setdefault(_LOOPBACK_ONLY, "0")
