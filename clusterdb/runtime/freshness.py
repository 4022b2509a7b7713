"""The one seam between a routed connection and read-your-writes: the token of this
connection's writes, and a replica connection that has applied it.

Until ``causal_token()`` and ``connect(..., after=token)`` exist, :func:`take_token` answers
None and a replica is any ``prefer-replica`` connection (a read right after a write may then be
stale); wiring the tokens in changes these four functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusterdb.core.description import WantedRole
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect

__all__ = ["open_replica", "open_replica_async", "take_token", "take_token_async"]


def take_token(conn: Any) -> str | None:
    """Where the primary's log stood after ``conn``'s last commit (None: not known)."""
    return None


async def take_token_async(conn: Any) -> str | None:
    """:func:`take_token` for an asyncio driver's connection."""
    return None


def open_replica(
    cluster: Cluster,
    token: str | None,
    overrides: Mapping[str, Any],
    role: WantedRole = "prefer-replica",
) -> Any:
    """A connection for ``role`` to a node that has applied ``token`` (None: any): a replica,
    else the primary for ``prefer-replica``."""
    return connect(cluster, role, dict(overrides))


async def open_replica_async(
    cluster: Cluster, token: str | None, overrides: Mapping[str, Any]
) -> Any:
    """:func:`open_replica` on the running event loop."""
    from clusterdb.runtime.connect_async import connect_async

    return await connect_async(cluster, "prefer-replica", dict(overrides))
