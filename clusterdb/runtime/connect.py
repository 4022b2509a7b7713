"""One ``clusterdb.connect()``: check the arguments, plan under the cluster's lock, begin the
first attempt in the calling thread when the driver can pause a connect, hand anything else to
the race (:mod:`clusterdb.runtime.race`), and count the outcome.

A driver that can pause (:attr:`DriverAdapter.starts_inline`) runs the first attempt right here
for up to its hedge delay: connected to a node whose role is known, or read at no cost and
fitting, it wins outright, with no race, queue or thread, and its stats wait in the cluster's
outbox (:meth:`Cluster.record_returned`) for the next connect to record while its server works.
A node still silent then goes, socket and all, to a worker while the race hedges; nodes given by
hostname run on a worker from the start (a resolver lookup cannot be paused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any

from clusterdb.core.causal_rules import Avoid
from clusterdb.core.description import Role, WantedRole
from clusterdb.core.request import query_timeout_request
from clusterdb.core.roles import role_wins
from clusterdb.drivers.base import Pending
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.plan_connect import plan_connect
from clusterdb.runtime.pooled import bound, tag
from clusterdb.runtime.race import Begun, race

__all__ = ["begin_here", "connect"]

_NOT_CONNECTED = (Exception, Pending)  # what start() gives when it has no connection yet


def connect(
    cluster: Cluster,
    wanted: WantedRole,
    overrides: dict[str, Any],
    prefer: str | None = None,
    avoid: Avoid | None = None,
) -> Any:
    """One clusterdb.connect(): plan, race, count the outcome. ``overrides`` go to the driver,
    except ``connect_timeout``, the overall deadline, and ``query_timeout``, the bound on the
    connection's calls; ``prefer``: a node to try first when it fits (a pool moving a
    connection); ``avoid``: (nodes to leave out, why)."""
    adapter = cluster.adapter
    query_timeout = query_timeout_request(overrides, cluster.options.query_timeout)
    chosen, timeout, detect = plan_connect(
        cluster, wanted, overrides, adapter.operational_error, adapter.role_is_free, prefer, avoid
    )
    begun: Begun | None = None
    try:
        if adapter.starts_inline and not chosen.race:
            # The first attempt, in this thread. When it connects to a node of known role,
            # as most do, nothing else has started: it has won, and no race is needed.
            node = chosen.nodes[0]
            began = monotonic()
            patience = min(chosen.hedge_delays[0], timeout)
            # idle=cluster.fold: earlier connects' stats, recorded while the server works;
            # a node removed since the plan fails at target(), for the race to go on.
            conn = begin_here(
                cluster, node, _start, cluster, node, overrides, timeout, patience, cluster.fold
            )
            if not isinstance(conn, _NOT_CONNECTED):
                # Most connects: the node's role is known, nothing to read (and no call).
                done, role = _settled_here(cluster, node, conn, wanted) if detect(node) else _WON
                if done:
                    tag(conn, cluster.tags[node])
                    cluster.record_returned(node, monotonic() - began, role)
                    return bound(adapter, conn, query_timeout)
            begun = Begun(conn, began)
        conn = race(
            cluster,
            chosen,
            _attempt(cluster, overrides),
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


def _attempt(cluster: Cluster, overrides: Mapping[str, Any]) -> Callable[[str, float], Any]:
    """The race's attempt function: ``adapter.connect()`` on a node's driver arguments, with a
    fresh password when the cluster has a provider (asked once per attempt). Made only when
    there is a race: a closure in :func:`connect` would cost every connect its cells."""
    adapter, credentials = cluster.adapter, cluster.credentials

    def attempt(node: str, remaining: float) -> Any:
        given = overrides if credentials is None else credentials.overrides(overrides)
        return adapter.connect(cluster.target(node), given, remaining)

    return attempt


_WON: tuple[bool, Role | None] = (True, None)  # a node whose role is known: won, none read


def _settled_here(
    cluster: Cluster, node: str, conn: Any, wanted: WantedRole
) -> tuple[bool, Role | None]:
    """Whether the first attempt's connection, on a node whose role is to be read
    (``detect(node)``; else it has won: :data:`_WON`), wins outright, and the role read on it:
    read with no round trip (psycopg) and fitting ``wanted``. Anything else (a role to query,
    a wrong role, a prefer-replica primary) is the race's to handle."""
    adapter = cluster.adapter
    if not adapter.role_is_free:
        return False, None
    try:
        role = adapter.detect_role(conn)
    except Exception:
        return False, None  # the race reads it again and counts the failure
    except BaseException:  # interrupted: not the node's failure
        adapter.close_quietly(conn)
        cluster.attempt_abandoned(node)
        raise
    if not role_wins(wanted, role):
        return False, None
    return True, role


def _start(cluster: Cluster, node: str, overrides: Mapping[str, Any], *args: Any) -> Any:
    """``adapter.start()`` on ``node``'s driver arguments, with a fresh password when the
    cluster has a provider."""
    credentials = cluster.credentials
    if credentials is not None:
        overrides = credentials.overrides(overrides)
    return cluster.adapter.start(cluster.target(node), overrides, *args)


def begin_here(
    cluster: Cluster, node: str, start: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``start(*args, **kwargs)``, an attempt on ``node`` begun in the calling thread: a
    connection, a :class:`Pending` attempt, or the Exception it raised (the node's failure,
    for the race to record). An interrupt (KeyboardInterrupt...) is not the node's failure:
    it propagates."""
    try:
        return start(*args, **kwargs)
    except Exception as exc:
        return exc
    except BaseException:
        cluster.attempt_abandoned(node)
        raise
