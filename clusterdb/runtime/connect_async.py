"""One ``await clusterdb.connect_async()``: plan, race on the caller's loop, count the outcome.

The same steps as :func:`clusterdb.runtime.racer.connect`, and the same cluster: its nodes'
state, stats, latency estimates and monitor are shared by connect() and connect_async().
Drivers that can pause a connect begin the first attempt in the caller's task
(:meth:`AsyncAdapter.start`): a node that answers within its hedge delay, with a role known or
read for free, wins there with no task, future or timer; one still silent is handed to a task
and hedged (:mod:`clusterdb.runtime.race_async`).
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from clusterdb.core.causal_rules import Avoid
from clusterdb.core.description import Role, WantedRole
from clusterdb.core.request import query_timeout_request
from clusterdb.core.roles import role_wins
from clusterdb.drivers import get_async_adapter
from clusterdb.drivers.asyncio_base import AsyncAdapter, AsyncPending
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.plan_connect import plan_connect
from clusterdb.runtime.pooled import bound, tag
from clusterdb.runtime.race_async import race_async

__all__ = ["connect_async"]

_NOT_CONNECTED = (Exception, AsyncPending)  # what start() gives when it has no connection yet


async def connect_async(
    cluster: Cluster,
    wanted: WantedRole,
    overrides: dict[str, Any],
    prefer: str | None = None,
    avoid: Avoid | None = None,
) -> Any:
    """The asyncio driver's connection to the node that won; ``overrides`` go to the driver,
    except ``connect_timeout``, the overall deadline, and ``query_timeout``, the bound on the
    connection's calls; ``prefer``: a node to try first when it fits (a pool moving a
    connection); ``avoid``: (nodes to leave out, why)."""
    adapter = get_async_adapter(cluster.adapter)
    query_timeout = query_timeout_request(overrides, cluster.options.query_timeout)
    plan, timeout, detect = plan_connect(
        cluster, wanted, overrides, adapter.operational_error, adapter.role_is_free, prefer, avoid
    )
    begun: tuple[Any, float] | None = None
    try:
        if adapter.starts_inline and not plan.race:
            node = plan.nodes[0]
            began = monotonic()
            patience = min(plan.hedge_delays[0], timeout)
            # What the attempt in the caller's task gave: a connection, an AsyncPending attempt,
            # or the Exception it raised (the node's failure, for the race to record; a node
            # removed since the plan fails at target()). A cancellation is not the node's
            # failure: it propagates. Inline, as every coroutine costs one connect_async().
            credentials = cluster.credentials  # a password provider, asked once per attempt
            try:
                given = (
                    overrides
                    if credentials is None
                    else await credentials.overrides_async(overrides)
                )
                conn = await adapter.start(
                    cluster.target(node), given, timeout, patience, cluster.fold
                )
            except Exception as exc:
                conn = exc
            except BaseException:
                cluster.attempt_abandoned(node)
                raise
            if not isinstance(conn, _NOT_CONNECTED):
                # Most connects: the node's role is known, nothing to read (and no coroutine).
                done, role = (
                    await _settled_here(cluster, adapter, node, conn, wanted)
                    if detect(node)
                    else _WON
                )
                if done:
                    cluster.record_returned(node, monotonic() - began, role)
                    tag(conn, cluster.tags[node])  # for node_of(), fits(), report_error()
                    return bound(adapter, conn, query_timeout)
            begun = (conn, began)
        conn = await race_async(
            cluster,
            adapter,
            plan,
            overrides,
            timeout=timeout,
            wanted=wanted,
            detect=detect,
            redactor=cluster.redactor_for(overrides),
            begun=begun,
        )
    except BaseException:
        cluster.record_outcome(False)
        raise
    cluster.record_outcome(True)
    return bound(adapter, conn, query_timeout)


_WON: tuple[bool, Role | None] = (True, None)  # a node whose role is known: won, none read


async def _settled_here(
    cluster: Cluster,
    adapter: AsyncAdapter,
    node: str,
    conn: Any,
    wanted: WantedRole,
) -> tuple[bool, Role | None]:
    """Whether the first attempt's connection, on a node whose role is to be read
    (``detect(node)``; else it has won: :data:`_WON`), wins outright, and the role read on it:
    read with no round trip (psycopg) and fitting ``wanted``. Anything else (a role to query,
    a wrong role, a prefer-replica primary) is the race's to handle."""
    if not adapter.role_is_free:
        return False, None
    try:
        role = await adapter.detect_role(conn)
    except Exception:
        return False, None  # the race reads it again and counts the failure
    except BaseException:
        await adapter.close(conn)
        cluster.attempt_abandoned(node)
        raise
    if not role_wins(wanted, role):
        return False, None
    return True, role
