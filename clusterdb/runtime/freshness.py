"""The one seam between routing and read-your-writes tokens (:mod:`clusterdb.runtime.causal`):
the token of a connection's writes, whether a replica connection has applied a token, and a
replica connection that has (``connect(after=token)``).

Used by the routed connections (``role="auto"``), the SQLAlchemy routing session and the
Django router. Why one seam: they share what a token costs (one round trip to take it, one to
check a kept connection) and what happens without one (reads stay where they are safe).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusterdb.core.causal import covers, parse_token
from clusterdb.core.causal_rules import APPLIED_SQL, applied_from_row
from clusterdb.core.description import WantedRole
from clusterdb.errors import InterfaceError
from clusterdb.runtime.causal import connect_after, token_of
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect

__all__ = [
    "applied",
    "applied_async",
    "open_replica",
    "open_replica_async",
    "take_token",
    "take_token_async",
]


def take_token(conn: Any) -> str | None:
    """Where the primary's log stood after ``conn``'s last commit (one round trip); None
    for a driver without tokens."""
    try:
        return token_of(conn)
    except InterfaceError:
        return None


async def take_token_async(conn: Any) -> str | None:
    """:func:`take_token` for an asyncio driver's connection."""
    from clusterdb.runtime.causal_async import token_of_async

    try:
        return await token_of_async(conn)
    except InterfaceError:
        return None


def _covered(cluster: Cluster, token: str, row: Any) -> bool:
    parsed = parse_token(token, cluster.name)
    replica, position, _ = applied_from_row(parsed.kind, row)
    return not replica or covers(position, parsed)


def applied(cluster: Cluster, conn: Any, token: str) -> bool:
    """Whether the node of ``conn`` has applied ``token`` (a primary has): one round trip."""
    kind = parse_token(token, cluster.name).kind
    return _covered(cluster, token, cluster.adapter.fetch_row(conn, APPLIED_SQL[kind]))


async def applied_async(cluster: Cluster, conn: Any, token: str) -> bool:
    """:func:`applied` for an asyncio driver's connection."""
    from clusterdb.drivers import get_async_adapter

    kind = parse_token(token, cluster.name).kind
    row = await get_async_adapter(cluster.adapter).fetch_row(conn, APPLIED_SQL[kind])
    return _covered(cluster, token, row)


def open_replica(
    cluster: Cluster,
    token: str | None,
    overrides: Mapping[str, Any],
    role: WantedRole = "prefer-replica",
) -> Any:
    """A connection for ``role`` to a node that has applied ``token`` (None: any): a replica,
    else (after the cluster's ``causal_wait``) the primary for ``prefer-replica``."""
    if token is None:
        return connect(cluster, role, dict(overrides))
    return connect_after(cluster, role, dict(overrides), token)


async def open_replica_async(
    cluster: Cluster,
    token: str | None,
    overrides: Mapping[str, Any],
    role: WantedRole = "prefer-replica",
) -> Any:
    """:func:`open_replica` on the running event loop."""
    from clusterdb.runtime.causal_async import connect_after_async
    from clusterdb.runtime.connect_async import connect_async

    if token is None:
        return await connect_async(cluster, role, dict(overrides))
    return await connect_after_async(cluster, role, dict(overrides), token)
