"""``connect_async(after=token)`` and ``causal_token_async(conn)`` on the caller's loop: the
steps of :mod:`clusterdb.runtime.causal` with awaits (the rules are the same objects, from
:mod:`clusterdb.core.causal_rules`); the wait is loop sleeps or the server's own wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from clusterdb.core.causal import parse_token
from clusterdb.core.causal_rules import TOKEN_SQL, CausalCourse, token_from_row
from clusterdb.core.description import WantedRole
from clusterdb.drivers import get_async_adapter
from clusterdb.drivers.asyncio_base import AsyncAdapter
from clusterdb.errors import AllNodesFailed, NoSuitableNode
from clusterdb.runtime.causal import (
    causal_kind,
    connection_cluster,
    node_name,
    refusal,
    search_ended,
)
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect_async import connect_async

__all__ = ["connect_after_async", "token_of_async"]

Held = list[tuple[str, Any]]


async def token_of_async(conn: Any) -> str:
    """The token of an asyncio connection's last commit (one round trip)."""
    cluster = connection_cluster(conn)
    adapter = get_async_adapter(cluster.adapter)
    kind = causal_kind(cluster, adapter.causal_kind)
    row = await adapter.fetch_row(conn, TOKEN_SQL[kind])
    return str(token_from_row(cluster.name, kind, row))


async def connect_after_async(
    cluster: Cluster,
    wanted: WantedRole,
    overrides: dict[str, Any],
    after: str | None,
    prefer: str | None = None,
) -> Any:
    """:func:`clusterdb.runtime.causal.connect_after` on the running loop."""
    if after is None:
        return await connect_async(cluster, wanted, overrides, prefer)
    token = parse_token(after, cluster.name)
    adapter = get_async_adapter(cluster.adapter)
    kind = causal_kind(cluster, adapter.causal_kind, token)
    positions = cluster.replica_positions()
    course = CausalCourse(token, wanted, positions, kind, cluster.options.causal_wait)
    if course.direct:
        return await connect_async(cluster, wanted, overrides, prefer)
    held: Held = []
    try:
        conn, reasons = await _search(cluster, adapter, course, overrides, held, prefer)
        if conn is None and held and course.waits:
            conn = await _wait(adapter, course, held)
        if conn is not None:
            return conn
        refused = course.give_up(bool(held), reasons)
        if refused is not None:
            raise refusal(cluster, course, refused, adapter.operational_error)
        return await connect_async(cluster, "primary", dict(overrides))
    finally:
        for node, conn in held:
            await adapter.close(conn)
            cluster.record_discarded(node)
        if course.waited or course.fell_back or course.seen:
            cluster.record_causal(course.waited, course.fell_back, course.seen)


async def _search(
    cluster: Cluster,
    adapter: AsyncAdapter,
    course: CausalCourse,
    overrides: dict[str, Any],
    held: Held,
    prefer: str | None,
) -> tuple[Any, dict[str, str]]:
    """A connection that covers the token, or (None, why the last connect found none)."""
    while True:
        try:
            conn = await connect_async(
                cluster, course.search_role, dict(overrides), prefer, course.avoiding
            )
        except (NoSuitableNode, AllNodesFailed) as exc:
            if course.widen():
                continue
            return None, search_ended(exc)
        node = node_name(conn)
        try:
            answer = (
                await adapter.fetch_row(conn, course.ask_sql) if course.needs_asking(node) else None
            )
            verdict = course.judge_answer(cluster.name, node, answer)
        except BaseException:
            await adapter.close(conn)
            raise
        if verdict == "take":
            return conn, {}
        held.append((node, conn))


async def _wait(adapter: AsyncAdapter, course: CausalCourse, held: Held) -> Any:
    """The first held connection whose node applies the token within ``causal_wait``."""
    course.start_wait(time.monotonic())
    pause: float | None = 0.0
    while held and pause is not None:
        await asyncio.sleep(pause)
        for item in list(held):
            try:
                row = await adapter.fetch_row(item[1], course.look(len(held), time.monotonic()))
            except Exception:
                held.remove(item)  # the node went away: not ours to wait on any more
                await adapter.close(item[1])
                continue
            if course.reached(row):
                held.remove(item)
                return item[1]
        pause = course.pause(time.monotonic())
    return None
