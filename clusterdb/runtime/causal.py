"""``connect(after=token)`` and ``causal_token(conn)`` on threads: the I/O around the pure rules
of :mod:`clusterdb.core.causal_rules` (shared with :mod:`clusterdb.runtime.causal_async`).

The search: connect to a replica (one the monitor saw past the token first), ask it what it
has applied (one round trip, skipped for a node the monitor already saw past it), take it when
it covers the token, else hold it and connect to the next replica, leaving the held ones out.
None did: wait up to ``causal_wait`` on the held ones (MariaDB ``MASTER_GTID_WAIT``, PostgreSQL
polled every 5 ms), then the course's fallback. Connections held and not returned are closed
(counted as discarded).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from clusterdb.core.causal import Kind, Token, parse_token
from clusterdb.core.causal_rules import TOKEN_SQL, CausalCourse, token_from_row
from clusterdb.core.description import WantedRole
from clusterdb.errors import (
    AllNodesFailed,
    CausalTokenError,
    InterfaceError,
    NoSuitableNode,
    bind_to_driver,
)
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect
from clusterdb.runtime.pooled import tag_of

__all__ = [
    "causal_kind",
    "connect_after",
    "connection_cluster",
    "node_name",
    "refusal",
    "search_ended",
    "token_of",
]

Held = list[tuple[str, Any]]


def connection_cluster(conn: Any) -> Cluster:
    """The cluster that made ``conn``; InterfaceError for any other object."""
    found = tag_of(conn)
    if found is None or not isinstance(found.cluster, Cluster):
        raise InterfaceError("causal_token: not a connection clusterdb returned")
    return found.cluster


def node_name(conn: Any) -> str:
    """The node of a connection connect() returned."""
    found = tag_of(conn)
    if found is None:
        raise InterfaceError("causal_token: not a connection clusterdb returned")
    return found.node


def search_ended(exc: NoSuitableNode | AllNodesFailed) -> dict[str, str]:
    """Why the search found no more replicas, per node (a failure's text is not repeated:
    it may hold what the redactor did not know was secret)."""
    if isinstance(exc, NoSuitableNode):
        return dict(exc.reasons)
    return {node: "connect failed" for node in exc.errors}


def causal_kind(cluster: Cluster, kind: Kind | None, token: Token | None = None) -> Kind:
    """The cluster's token kind; InterfaceError when its driver gives none, CausalTokenError
    when ``token`` is of another kind."""
    if kind is None:
        raise InterfaceError(
            f"cluster {cluster.name!r}: driver {cluster.adapter.name} gives no "
            "read-your-writes tokens (psycopg and PyMySQL/asyncmy on MariaDB do)"
        )
    if token is not None and token.kind != kind:
        raise CausalTokenError(f"a {token.kind} token used on {kind} cluster {cluster.name!r}")
    return kind


def token_of(conn: Any) -> str:
    """The token of ``conn``'s last commit (see :func:`clusterdb.causal_token`)."""
    if inspect.iscoroutinefunction(getattr(type(conn), "commit", None)):
        raise InterfaceError("an asyncio connection: use await clusterdb.causal_token_async()")
    cluster = connection_cluster(conn)
    kind = causal_kind(cluster, cluster.adapter.causal_kind)
    adapter = cluster.adapter
    tracked = adapter.tracked_position(conn)  # no round trip when the server reported it
    row = (tracked, "") if tracked else adapter.fetch_row(conn, TOKEN_SQL[kind])
    return str(token_from_row(cluster.name, kind, row))


def connect_after(
    cluster: Cluster,
    wanted: WantedRole,
    overrides: dict[str, Any],
    after: str | None,
    prefer: str | None = None,
) -> Any:
    """A connection to a node of ``wanted`` role that has applied token ``after`` (None: a
    plain :func:`~clusterdb.runtime.connect.connect`)."""
    if after is None:
        return connect(cluster, wanted, overrides, prefer)
    token = parse_token(after, cluster.name)
    kind = causal_kind(cluster, cluster.adapter.causal_kind, token)
    positions = cluster.replica_positions()
    course = CausalCourse(token, wanted, positions, kind, cluster.options.causal_wait)
    if course.direct:
        return connect(cluster, wanted, overrides, prefer)
    held: Held = []
    try:
        conn, reasons = _search(cluster, course, overrides, held, prefer)
        if conn is None and held and course.waits:
            conn = _wait(cluster, course, held)
        if conn is not None:
            return conn
        refused = course.give_up(bool(held), reasons)
        if refused is not None:
            raise refusal(cluster, course, refused, cluster.adapter.operational_error)
        return connect(cluster, "primary", dict(overrides))
    finally:
        for node, conn in held:
            cluster.adapter.close_quietly(conn)
            cluster.record_discarded(node)
        if course.waited or course.fell_back or course.seen:
            cluster.record_causal(course.waited, course.fell_back, course.seen)


def refusal(
    cluster: Cluster, course: CausalCourse, reasons: dict[str, str], driver_error: type[Exception]
) -> Exception:
    """The NoSuitableNode of a ``replica`` connect no replica served in time."""
    return bind_to_driver(NoSuitableNode, driver_error)(cluster.name, course.wanted_text(), reasons)


def _search(
    cluster: Cluster,
    course: CausalCourse,
    overrides: dict[str, Any],
    held: Held,
    prefer: str | None,
) -> tuple[Any, dict[str, str]]:
    """A connection that covers the token, or (None, why the last connect found none)."""
    adapter = cluster.adapter
    while True:
        try:
            conn = connect(cluster, course.search_role, dict(overrides), prefer, course.avoiding)
        except (NoSuitableNode, AllNodesFailed) as exc:
            if course.widen():
                continue
            return None, search_ended(exc)
        node = node_name(conn)
        try:
            answer = adapter.fetch_row(conn, course.ask_sql) if course.needs_asking(node) else None
            verdict = course.judge_answer(cluster.name, node, answer)
        except BaseException:
            adapter.close_quietly(conn)
            raise
        if verdict == "take":
            return conn, {}
        held.append((node, conn))


def _wait(cluster: Cluster, course: CausalCourse, held: Held) -> Any:
    """The first held connection whose node applies the token within ``causal_wait``."""
    adapter = cluster.adapter
    course.start_wait(time.monotonic())
    pause: float | None = 0.0
    while held and pause is not None:
        time.sleep(pause)
        for item in list(held):
            try:
                row = adapter.fetch_row(item[1], course.look(len(held), time.monotonic()))
            except Exception:
                held.remove(item)  # the node went away: not ours to wait on any more
                adapter.close_quietly(item[1])
                continue
            if course.reached(row):
                held.remove(item)
                return item[1]
        pause = course.pause(time.monotonic())
    return None
