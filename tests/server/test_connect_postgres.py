"""clusterdb.connect() on a real PostgreSQL 1+2 cluster: native connections, dead and hung
nodes, the overall deadline, and nothing leaked by abandoned attempts."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from connect_support import (
    app_connections,
    attempt_threads,
    deaf_start,
    registered,
    settled,
    wait_for,
    warm_up_until_first,
    whoami,
)

import clusterdb
import clusterdb.psycopg
from clusterdb.drivers.base import Pending
from clusterdb.drivers.psycopg import PsycopgAdapter
from clusterdb.runtime import process
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


def test_connect_returns_a_native_connection_to_a_live_node(pg_cluster: PostgresCluster) -> None:
    names = {n.name for n in pg_cluster.nodes}
    with registered(pg_cluster) as name:
        conn = clusterdb.connect(name)
        try:
            assert type(conn) is psycopg.Connection
            assert whoami(pg_cluster, conn) in names
            conn.rollback()
            # Exactly what psycopg.connect() gives: no transaction open, psycopg's defaults.
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            assert conn.autocommit is False
            assert conn.Error is clusterdb.psycopg.Error
        finally:
            conn.close()

        conn = clusterdb.psycopg.connect(name, autocommit=True, application_name="cdb-test")
        try:
            assert conn.autocommit is True
            assert conn.info.parameter_status("application_name") == "cdb-test"
        finally:
            conn.close()


def test_dsn_string_nodes_work(pg_cluster: PostgresCluster) -> None:
    nodes = [f"host={n.host} port={n.proxy_port}" for n in pg_cluster.nodes]
    with registered(pg_cluster, nodes=nodes) as name:
        with clusterdb.connect(name) as conn:
            assert whoami(pg_cluster, conn) in {n.name for n in pg_cluster.nodes}
        snap = settled(name)
        assert [n.address for n in snap.nodes] == [
            f"{n.host}:{n.proxy_port}" for n in pg_cluster.nodes
        ]


def test_refused_and_hung_nodes_do_not_make_connect_fail(pg_cluster: PostgresCluster) -> None:
    refused, hung, live = pg_cluster.nodes
    refused.proxy.set_mode("refuse")
    hung.hang()
    with registered(pg_cluster, connect_timeout=1.0) as name:
        for _ in range(5):
            with clusterdb.connect(name) as conn:
                assert whoami(pg_cluster, conn) == live.name
        snap = settled(name)
        assert snap.connects == 5 and snap.failures == 0
        assert snap.node(refused.name).state == "down"
        assert snap.node(refused.name).connect_errors >= 1
        assert snap.node(hung.name).state == "down"
        assert "timeout" in (snap.node(hung.name).last_error or "")


def test_a_hung_node_first_in_rank_costs_a_fraction_of_the_driver_timeout(
    pg_cluster: PostgresCluster,
) -> None:
    first, *others = pg_cluster.nodes
    for node in others:
        node.proxy.set_delay(0.005)  # a few round trips: ~+40 ms per connect, far behind
    # A 5 s deadline gives each psycopg attempt a 5 s connect_timeout.
    with registered(pg_cluster, connect_timeout=5.0) as name:
        warm_up_until_first(name, first.name)
        before = clusterdb.stats.snapshot(name).node(first.name).attempts
        first.hang()
        started = time.monotonic()
        conn = clusterdb.connect(name)
        elapsed = time.monotonic() - started
        try:
            assert whoami(pg_cluster, conn) != first.name
        finally:
            conn.close()
        assert elapsed < 0.5, f"connect() took {elapsed:.3f} s with a hung node first"
        # The hung node was tried first (and is still pending), not skipped.
        assert clusterdb.stats.snapshot(name).node(first.name).attempts == before + 1

        # Ranked down by the hedge: the next connect does not wait on it again.
        started = time.monotonic()
        clusterdb.connect(name).close()
        assert time.monotonic() - started < 0.5
        first.resume()
        settled(name)


def test_every_node_down_raises_all_nodes_failed(pg_cluster: PostgresCluster) -> None:
    killed, *refusing = pg_cluster.nodes
    killed.kill()
    for node in refusing:
        node.proxy.set_mode("refuse")
    with registered(pg_cluster) as name:
        with pytest.raises(psycopg.OperationalError) as info:
            clusterdb.connect(name)
        error = info.value
        assert isinstance(error, clusterdb.AllNodesFailed)
        assert isinstance(error, clusterdb.Error)
        assert list(error.errors) == [n.name for n in pg_cluster.nodes]
        lines = str(error).splitlines()
        assert lines[0] == f"cluster {name!r}: all 3 nodes tried failed:"
        for node, line in zip(pg_cluster.nodes, lines[1:], strict=True):
            assert line.startswith(f"  {node.name}: OperationalError: "), line
            assert str(node.proxy_port) in line  # psycopg names the address it could not reach

        try:
            clusterdb.connect(name)
        except clusterdb.Error as caught:
            assert isinstance(caught, clusterdb.AllNodesFailed)
        assert clusterdb.stats.snapshot(name).failures == 2


def test_sub_second_deadline_with_every_node_deaf(pg_cluster: PostgresCluster) -> None:
    for node in pg_cluster.nodes:
        node.proxy.set_mode("deaf")
    with registered(pg_cluster) as name:
        started = time.monotonic()
        with pytest.raises(clusterdb.AllNodesFailed) as info:
            clusterdb.connect(name, connect_timeout=0.3)
        elapsed = time.monotonic() - started
        # psycopg's own timeout could not go below 2 s.
        assert 0.3 <= elapsed < 1.0, elapsed
        for node in pg_cluster.nodes:
            assert f"{node.name}: no answer within 0.3 s (connect_timeout)" in str(info.value)
        for node in pg_cluster.nodes:
            node.proxy.set_mode("pass")
        settled(name)  # the abandoned attempts end on their own


def test_abandoned_attempts_leak_no_thread_and_no_connection(
    pg_cluster: PostgresCluster, recwarn: pytest.WarningsRecorder
) -> None:
    hung = pg_cluster.nodes[1]
    baseline = {n.name: app_connections(pg_cluster, n) for n in pg_cluster.nodes}
    hung.hang()
    # Nothing known yet: every node is raced; the hung one is abandoned at the winner.
    with registered(pg_cluster, connect_timeout=1.0) as name:
        started = time.monotonic()
        conn = clusterdb.connect(name)
        assert time.monotonic() - started < 1.0
        winner = whoami(pg_cluster, conn)
        assert winner != hung.name
        # The other live node's connection lost the race: closed by its own attempt.
        live = [n for n in pg_cluster.nodes if n is not hung]
        expected = {n.name: baseline[n.name] + (n.name == winner) for n in live}
        assert wait_for(lambda: {n.name: app_connections(pg_cluster, n) for n in live} == expected)
        conn.close()

        # psycopg gives the hung attempt 2 s (its minimum); then its thread ends.
        assert wait_for(lambda: not attempt_threads(), timeout=10), attempt_threads()
        snap = settled(name, timeout=1)
        assert snap.node(hung.name).connect_errors == 1
        assert snap.node(hung.name).last_error == "ConnectionTimeout: connection timeout expired"
        hung.resume()
        assert wait_for(
            lambda: {n.name: app_connections(pg_cluster, n) for n in pg_cluster.nodes} == baseline
        )
    # Losers were closed, not left to the garbage collector (psycopg warns when it must).
    unclosed = [str(w.message) for w in recwarn if issubclass(w.category, ResourceWarning)]
    assert not [m for m in unclosed if "connection" in m], unclosed


def test_concurrent_connects_all_get_a_connection(pg_cluster: PostgresCluster) -> None:
    """Threads sharing one cluster: each gets its own connection (threadsafety 1 at least)."""
    results: list[Any] = []
    with registered(pg_cluster) as name:

        def worker() -> None:
            with clusterdb.connect(name) as conn:
                results.append(whoami(pg_cluster, conn))

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 8
        assert set(results) <= {n.name for n in pg_cluster.nodes}


class _TokenConnection(psycopg.Connection[Any]):
    """A connection class with its own parameter hook (as an IAM-token subclass would have)."""

    calls = 0

    @classmethod
    def _get_connection_params(cls, conninfo: str, **kwargs: Any) -> Any:
        _TokenConnection.calls += 1
        return super()._get_connection_params(conninfo, **kwargs)


def test_psycopg_start_connects_in_the_calling_thread_or_hands_over_when_slow(
    pg_cluster: PostgresCluster,
) -> None:
    """The first attempt is driven in the caller's thread for up to its patience: a node that
    completes the handshake in time is connected right there, with psycopg's settings applied;
    a silent one (deaf proxy) becomes a Pending attempt within that patience, and its worker
    side ends at its own time limit with psycopg's ConnectionTimeout."""
    node = pg_cluster.nodes[0]
    with registered(pg_cluster) as name:
        cluster = process.get(name)
        adapter = cluster.adapter
        assert isinstance(adapter, PsycopgAdapter) and adapter.starts_inline
        target = cluster.target(node.name)
        assert f"port={node.proxy_port}" in target.args[0]  # so that the proxy's modes apply

        conn = adapter.start(
            target, {"autocommit": True, "row_factory": psycopg.rows.dict_row}, 5.0, 1.0
        )
        try:
            assert isinstance(conn, psycopg.Connection) and conn.autocommit
            row = conn.execute(f"{pg_cluster.WHOAMI_SQL} AS whoami").fetchone()
            assert row == {"whoami": node.name}  # the row_factory was applied
        finally:
            conn.close()

        pending = deaf_start(adapter, target, node)
        with pytest.raises(psycopg.errors.ConnectionTimeout):
            pending.finish(0.2)

        node.proxy.set_mode("refuse")
        with pytest.raises(psycopg.OperationalError, match="connection"):
            adapter.start(target, {}, 5.0, 1.0)

        # A class with its own parameter hook goes through psycopg's connect(), in a worker.
        node.proxy.set_mode("pass")
        handed = adapter.start(target, {"connection_class": _TokenConnection}, 5.0, 1.0)
        assert isinstance(handed, Pending) and _TokenConnection.calls == 0
        conn = handed.finish(5.0)
        try:
            assert isinstance(conn, _TokenConnection) and _TokenConnection.calls == 1
        finally:
            conn.close()
