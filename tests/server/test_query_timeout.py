"""A node that freezes after the connect (issue 16, "Frozen node mid-query"), on real servers.

The node is SIGSTOPped (the harness's ``hang()``) right after the connect; its kernel still
acknowledges TCP, so only ``query_timeout`` ends the query: within the bound plus 1 s, with
the driver's own ``OperationalError``, and the node shows down in clusterdb.stats afterwards.
PostgreSQL and MariaDB, connect() and connect_async(). Each registration has the one node, so
the connection is on the node that freezes; the connection is direct (no harness proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncmy.errors
import psycopg
import pymysql
import pytest
from async_support import close
from connect_support import registered

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.node import TestNode

BOUND = 1.0
SLACK = 1.0  # the bound: query_timeout + 1 s (measured: 1.00-1.01 s in all four)

CASES = [
    pytest.param(
        "pg_cluster", False, psycopg.OperationalError, marks=pytest.mark.postgres, id="pg"
    ),
    pytest.param(
        "pg_cluster", True, psycopg.OperationalError, marks=pytest.mark.postgres, id="pg-async"
    ),
    pytest.param(
        "mariadb_cluster", False, pymysql.err.OperationalError, marks=pytest.mark.mariadb, id="my"
    ),
    pytest.param(
        "mariadb_cluster",
        True,
        asyncmy.errors.OperationalError,
        marks=pytest.mark.mariadb,
        id="my-async",
    ),
]


@contextlib.contextmanager
def _one_node(harness: Cluster, index: int = -1, **options: Any) -> Iterator[tuple[str, TestNode]]:
    """A registration of one node only (by default a replica: the primary stays up for the
    other tests), directly on its server."""
    node = harness.nodes[index]
    spec = next(s for s in harness.node_specs(via_proxy=False) if s["name"] == node.name)
    with registered(harness, nodes=[spec], **options) as name:
        yield name, node


def _query_sync(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()


async def _query_async(conn: Any, sql: str) -> Any:
    if hasattr(conn, "pgconn"):
        cur = await conn.execute(sql)
        return await cur.fetchall()
    async with conn.cursor() as cur:
        await cur.execute(sql)
        return await cur.fetchall()


def _state(name: str) -> tuple[str, str | None]:
    node = clusterdb.stats.snapshot(name).nodes[0]
    return node.state, node.last_error


async def _frozen_on_a_loop(name: str, node: TestNode) -> tuple[float, Exception | None, type]:
    """connect_async(), freeze the node, query: (seconds, the error, the connection's class)."""
    conn = await clusterdb.connect_async(name)
    node.hang()
    began = time.monotonic()
    try:
        await asyncio.wait_for(_query_async(conn, "SELECT 1"), 30)
    except Exception as exc:
        return time.monotonic() - began, exc, type(conn)
    finally:
        node.resume()
        await close(conn)
    return time.monotonic() - began, None, type(conn)


async def _twice(name: str, sleep: str) -> None:
    conn = await clusterdb.connect_async(name)
    try:
        await _query_async(conn, sleep)
        assert len(await _query_async(conn, "SELECT 1")) == 1
    finally:
        await close(conn)


@pytest.mark.parametrize(("fixture", "on_loop", "driver_error"), CASES)
def test_a_query_on_a_node_frozen_after_connect_fails_within_the_bound(
    request: pytest.FixtureRequest, fixture: str, on_loop: bool, driver_error: type[Exception]
) -> None:
    harness: Cluster = request.getfixturevalue(fixture)
    with _one_node(harness, query_timeout=BOUND) as (name, node):
        if on_loop:
            elapsed, error, cls = asyncio.run(_frozen_on_a_loop(name, node))
            # The driver's own class (asyncmy's, or clusterdb's subclass of it for preferred TLS).
            assert any(c.__module__.startswith(("psycopg", "asyncmy")) for c in cls.__mro__[:2])
        else:
            conn = clusterdb.connect(name)
            cls = type(conn)
            # The driver's own class (PyMySQL's, or clusterdb's subclass that reads last_gtid).
            assert (
                cls is psycopg.Connection or cls.__mro__[:2][-1] is pymysql.connections.Connection
            )
            node.hang()
            began = time.monotonic()
            error = None
            try:
                _query_sync(conn, "SELECT 1")
            except Exception as exc:
                error = exc
            finally:
                elapsed = time.monotonic() - began
                node.resume()
                conn.close()
        assert isinstance(error, driver_error), repr(error)
        assert BOUND * 0.9 <= elapsed < BOUND + SLACK, elapsed
        state, last_error = _state(name)
        assert state == "down", (state, last_error)
        assert last_error is not None and "connection" in last_error.lower(), last_error


@pytest.mark.parametrize(("fixture", "on_loop", "driver_error"), CASES)
def test_a_query_well_under_the_bound_is_unaffected(
    request: pytest.FixtureRequest, fixture: str, on_loop: bool, driver_error: type[Exception]
) -> None:
    harness: Cluster = request.getfixturevalue(fixture)
    sleep = "SELECT pg_sleep(0.2)" if fixture == "pg_cluster" else "SELECT SLEEP(0.2)"
    with _one_node(harness, query_timeout=3.0) as (name, _node):
        if on_loop:
            asyncio.run(_twice(name, sleep))
        else:
            conn = clusterdb.connect(name)
            try:
                _query_sync(conn, sleep)
                assert len(_query_sync(conn, "SELECT 1")) == 1
            finally:
                conn.close()
        assert _state(name)[0] == "up"


def _append(outcome: list[object], conn: Any) -> None:
    outcome.append(_query_sync(conn, "SELECT 1"))


@pytest.mark.postgres
def test_query_timeout_none_for_one_connection_leaves_it_unbounded(pg_cluster: Cluster) -> None:
    with _one_node(pg_cluster, query_timeout=BOUND) as (name, node):
        conn = clusterdb.connect(name, query_timeout=None)  # a long job's connection
        outcome: list[object] = []
        worker = threading.Thread(target=_append, args=(outcome, conn))
        node.hang()
        try:
            worker.start()
            worker.join(BOUND * 3)
            assert worker.is_alive(), outcome  # still waiting, well past the cluster's bound
        finally:
            node.resume()
        worker.join(30)
        assert outcome == [[(1,)]]
        conn.close()


@pytest.mark.postgres
def test_an_idle_connection_waiting_for_notifications_is_not_cut(pg_cluster: Cluster) -> None:
    with _one_node(pg_cluster, 0, query_timeout=0.3) as (name, _node):
        conn = clusterdb.connect(name, autocommit=True)
        try:
            conn.execute("LISTEN qtimeout")
            began = time.monotonic()
            assert list(conn.notifies(timeout=1.5)) == []  # nothing sent: no command waiting
            assert time.monotonic() - began >= 1.0
            assert not conn.broken and _query_sync(conn, "SELECT 1") == [(1,)]
        finally:
            conn.close()
        assert _state(name)[0] == "up"


@pytest.mark.postgres
def test_the_pool_connection_class_stays_and_is_bounded(pg_cluster: Cluster) -> None:
    import clusterdb.psycopg

    with _one_node(pg_cluster) as (name, node):
        plain = clusterdb.connect(name)  # no bound: psycopg's own wait, nothing set on it
        assert "wait" not in vars(plain)
        plain.close()
        conn = clusterdb.psycopg.Connection.connect(name, query_timeout=BOUND)
        assert type(conn) is clusterdb.psycopg.Connection
        node.hang()
        began = time.monotonic()
        try:
            with pytest.raises(psycopg.OperationalError) as info:
                conn.execute("SELECT 1")
            elapsed = time.monotonic() - began
        finally:
            node.resume()
        assert BOUND * 0.9 <= elapsed < BOUND + SLACK, elapsed
        assert conn.broken
        assert any("query_timeout" in note for note in getattr(info.value, "__notes__", []))
        conn.close()
        assert _state(name)[0] == "down"


@pytest.mark.parametrize(("fixture", "on_loop", "driver_error"), CASES)
def test_a_statement_slower_than_the_bound_fails_too(
    request: pytest.FixtureRequest, fixture: str, on_loop: bool, driver_error: type[Exception]
) -> None:
    # The documented price of a bound: a healthy server's long statement is cut the same way
    # (psycopg and asyncmy bound a whole call; PyMySQL each silence, and SLEEP is silent).
    harness: Cluster = request.getfixturevalue(fixture)
    sleep = "SELECT pg_sleep(5)" if fixture == "pg_cluster" else "SELECT SLEEP(5)"
    with _one_node(harness, query_timeout=0.5) as (name, _node):
        began = time.monotonic()
        with pytest.raises(driver_error):
            if on_loop:
                asyncio.run(_twice(name, sleep))
            else:
                conn = clusterdb.connect(name)
                try:
                    _query_sync(conn, sleep)
                finally:
                    conn.close()
        assert time.monotonic() - began < 4.0  # cut at the bound, not after the 5 s sleep
