"""The first steps of one connect(), whether its attempts run on threads or on an event loop."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from clusterdb.core.causal_rules import Avoid
from clusterdb.core.description import WantedRole
from clusterdb.core.failures import no_suitable
from clusterdb.core.request import connect_request
from clusterdb.core.roles import roles_to_read
from clusterdb.core.selection import Plan
from clusterdb.runtime import process
from clusterdb.runtime.cluster import Cluster

__all__ = ["plan_connect"]


def plan_connect(
    cluster: Cluster,
    wanted: WantedRole,
    overrides: MutableMapping[str, Any],
    driver_error: type[Exception],
    role_is_free: bool,
    prefer: str | None = None,
    avoid: Avoid | None = None,
) -> tuple[Plan, float, Callable[[str], bool]]:
    """Check the arguments (``connect_timeout`` is taken out of ``overrides``), have the
    monitor watch the cluster, and plan: the plan (its first attempts counted pending), the
    overall deadline in seconds, and which nodes' role to read on a new connection;
    ``prefer``: a node to try first when it fits; ``avoid``: (nodes to leave out, why).
    Raises ConfigError, or NoSuitableNode (also ``driver_error``, counted as a failed
    connect) when no node fits."""
    timeout = connect_request(wanted, overrides, cluster.options.connect_timeout)
    cluster.watch(process.monitor())
    chosen, desc = cluster.begin(wanted, prefer, avoid)
    if not chosen.nodes:
        cluster.record_outcome(False)
        if wanted == "primary":  # no primary known: look for a promoted one
            cluster.request_check()
        raise no_suitable(cluster.name, wanted, chosen, driver_error)
    return chosen, timeout, roles_to_read(wanted, role_is_free, desc)
