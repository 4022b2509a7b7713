"""clusterdb.connect() on a real MariaDB 1+1 cluster with PyMySQL: native connections, dead
and hung nodes (PyMySQL has no handshake timeout of its own), the overall deadline, and
nothing leaked by abandoned attempts."""

from __future__ import annotations

import time

import pymysql
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
from pymysql.constants import SERVER_STATUS

import clusterdb
import clusterdb.pymysql
from clusterdb.drivers import pymysql as pymysql_driver
from clusterdb.drivers.pymysql import PyMySQLAdapter
from clusterdb.runtime import process
from clusterdb.testing.cluster import TestNode
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.ports import free_port

pytestmark = pytest.mark.mariadb


def nowhere() -> dict[str, object]:
    """A node whose port refuses connections."""
    return {"name": "nowhere", "host": "127.0.0.1", "port": free_port()}


def aborted_clients(harness: MariaDBCluster, node: TestNode) -> int:
    """Connections the server saw dropped without a proper close (no COM_QUIT)."""
    rows = harness.execute(node, "SHOW GLOBAL STATUS LIKE 'Aborted_clients'")
    return int(rows[0][1])


def test_connect_returns_a_native_connection_to_a_live_node(
    mariadb_cluster: MariaDBCluster,
) -> None:
    names = {n.name for n in mariadb_cluster.nodes}
    with registered(mariadb_cluster) as name:
        conn = clusterdb.connect(name)
        try:
            # PyMySQL's own class, or clusterdb's subclass of it that tracks the last GTID.
            assert isinstance(conn, pymysql.connections.Connection)
            assert type(conn).__mro__[1] is pymysql.connections.Connection
            # The role was read on this connection (first connect): no transaction left open.
            assert not conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS
            assert conn.get_autocommit() is False
            # The handshake's temporary timeouts are gone: the caller's (none) are back.
            assert (conn._read_timeout, conn._write_timeout) == (None, None)
            assert whoami(mariadb_cluster, conn) in names
            assert conn.Error is clusterdb.pymysql.Error
        finally:
            conn.close()
        snap = settled(name)
        roles = {n.name: n.role for n in snap.nodes}
        assert roles == {n.name: n.role for n in mariadb_cluster.nodes}

        conn = clusterdb.pymysql.connect(name, autocommit=True, read_timeout=7)
        try:
            assert conn.get_autocommit() is True
            assert conn._read_timeout == 7
        finally:
            conn.close()


def test_refused_and_hung_nodes_do_not_make_connect_fail(
    mariadb_cluster: MariaDBCluster,
) -> None:
    live, hung = mariadb_cluster.nodes
    hung.hang()
    nodes = [nowhere(), *mariadb_cluster.node_specs()]
    with registered(mariadb_cluster, nodes=nodes, connect_timeout=1.0) as name:
        for _ in range(5):
            conn = clusterdb.connect(name)
            try:
                assert whoami(mariadb_cluster, conn) == live.name
            finally:
                conn.close()
        snap = settled(name, timeout=10)
        assert (snap.connects, snap.failures) == (5, 0)
        assert snap.node("nowhere").state == "down"
        assert "Can't connect" in (snap.node("nowhere").last_error or "")
        assert snap.node(hung.name).state == "down"
        assert "timed out" in (snap.node(hung.name).last_error or "")


def test_a_hung_node_first_in_rank_costs_a_fraction_of_the_driver_timeout(
    mariadb_cluster: MariaDBCluster,
) -> None:
    other, first = mariadb_cluster.nodes
    other.proxy.set_delay(0.01)  # a few round trips: ~+80 ms per connect, far behind
    # connect_timeout=5 gives each PyMySQL attempt 5 s; the hedge waits at most 50 ms.
    with registered(mariadb_cluster, connect_timeout=5.0, hedge_max_ms=50) as name:
        warm_up_until_first(name, first.name)
        before = clusterdb.stats.snapshot(name).node(first.name).attempts
        first.hang()
        started = time.monotonic()
        conn = clusterdb.connect(name)
        elapsed = time.monotonic() - started
        try:
            assert whoami(mariadb_cluster, conn) == other.name
        finally:
            conn.close()
        assert elapsed < 0.5, f"connect() took {elapsed:.3f} s with a hung node first"
        assert clusterdb.stats.snapshot(name).node(first.name).attempts == before + 1
        first.resume()
        settled(name)


def test_every_node_down_raises_all_nodes_failed(mariadb_cluster: MariaDBCluster) -> None:
    killed, refusing = mariadb_cluster.nodes
    killed.kill()
    refusing.proxy.set_mode("refuse")
    with registered(mariadb_cluster) as name:
        with pytest.raises(pymysql.err.OperationalError) as info:
            clusterdb.connect(name)
        error = info.value
        assert isinstance(error, clusterdb.AllNodesFailed)
        assert list(error.errors) == [n.name for n in mariadb_cluster.nodes]
        for node in mariadb_cluster.nodes:
            assert f"  {node.name}: OperationalError: " in str(error)
        try:
            clusterdb.connect(name)
        except clusterdb.Error as caught:
            assert isinstance(caught, clusterdb.AllNodesFailed)
        assert clusterdb.stats.snapshot(name).failures == 2


def test_sub_second_deadline_with_every_node_deaf(mariadb_cluster: MariaDBCluster) -> None:
    for node in mariadb_cluster.nodes:
        node.proxy.set_mode("deaf")
    with registered(mariadb_cluster) as name:
        started = time.monotonic()
        with pytest.raises(clusterdb.AllNodesFailed) as info:
            clusterdb.connect(name, connect_timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 1.0
        for node in mariadb_cluster.nodes:
            assert f"{node.name}: no answer within 0.3 s (connect_timeout)" in str(info.value)
        # The handshake got a read timeout of what was left: the attempts end on their own,
        # although the nodes still do not answer (PyMySQL alone would wait forever).
        assert wait_for(lambda: not attempt_threads(), timeout=5), attempt_threads()
        snap = settled(name, timeout=1)
        assert all(n.connect_errors == 1 for n in snap.nodes)


def test_abandoned_attempts_leak_no_thread_and_no_connection(
    mariadb_cluster: MariaDBCluster,
) -> None:
    live, hung = mariadb_cluster.nodes
    nodes = [*mariadb_cluster.node_specs(), {**mariadb_cluster.node_specs()[0], "name": "again"}]
    baseline = {n.name: app_connections(mariadb_cluster, n) for n in mariadb_cluster.nodes}
    aborted = aborted_clients(mariadb_cluster, live)
    hung.hang()
    # Nothing known: all three raced. "again" reaches the live server too, so one of the two
    # live attempts loses the race and must close its connection properly.
    with registered(mariadb_cluster, nodes=nodes, connect_timeout=1.0) as name:
        conn = clusterdb.connect(name)
        assert whoami(mariadb_cluster, conn) == live.name
        expected = baseline[live.name] + 1
        assert wait_for(lambda: app_connections(mariadb_cluster, live) == expected)
        conn.close()

        assert wait_for(lambda: not attempt_threads(), timeout=10), attempt_threads()
        snap = settled(name, timeout=1)
        assert snap.node(hung.name).connect_errors == 1
        assert snap.node("again").connects + snap.node(live.name).connects == 2
        assert sum(n.discarded for n in snap.nodes) == 1
    hung.resume()
    assert wait_for(
        lambda: (
            {n.name: app_connections(mariadb_cluster, n) for n in mariadb_cluster.nodes} == baseline
        )
    )
    assert aborted_clients(mariadb_cluster, live) == aborted  # closed with COM_QUIT, not dropped


def test_pymysql_start_tells_a_live_server_from_a_silent_one_in_the_calling_thread(
    mariadb_cluster: MariaDBCluster,
) -> None:
    """The first attempt begins in the caller's thread: a server that greets within the
    patience is connected to right there; a silent one (accepts TCP, never greets) becomes a
    Pending attempt within that patience, whose worker side fails once its time is up."""
    node = mariadb_cluster.nodes[0]
    with registered(mariadb_cluster) as name:
        cluster = process.get(name)
        adapter = cluster.adapter
        assert isinstance(adapter, PyMySQLAdapter) and adapter.starts_inline
        target = cluster.target(node.name)
        assert target.kwargs["port"] == node.proxy_port  # so that the proxy's modes apply

        conn = adapter.start(target, {"autocommit": True}, 5.0, 0.5)
        try:
            assert whoami(mariadb_cluster, conn) == node.name
            assert conn.get_autocommit() and conn.host_info.startswith("socket ")
            assert (conn._read_timeout, conn._write_timeout) == (None, None)
        finally:
            conn.close()

        pending = deaf_start(adapter, target, node)
        with pytest.raises(pymysql.err.OperationalError) as info:
            pending.finish(0.2)
        assert "no greeting from the server" in str(info.value)

        node.proxy.set_mode("refuse")
        with pytest.raises(pymysql.err.OperationalError) as refused:
            adapter.start(target, {}, 5.0, 0.5)
        assert refused.value.args[0] == 2003 and "Can't connect to MySQL server" in str(
            refused.value
        )


def test_a_server_that_greets_and_then_stalls_fails_within_the_timeout(
    mariadb_cluster: MariaDBCluster,
) -> None:
    """Hedging waits only for the greeting: the rest of the handshake is bounded by what is
    left of the deadline, and ends in PyMySQL's own error (PyMySQL alone would wait forever)."""
    node = mariadb_cluster.nodes[0]
    with registered(mariadb_cluster) as name:
        kwargs = dict(process.get(name).target(node.name).kwargs)
    sock = pymysql_driver._open("127.0.0.1", node.proxy_port)
    assert pymysql_driver._greeted(sock, 1.0)  # the greeting is in; from here, silence
    node.proxy.set_mode("deaf")
    conn, read_timeout, write_timeout = pymysql_driver._unconnected(kwargs, 0.3)
    started = time.monotonic()
    with pytest.raises(pymysql.err.OperationalError) as info:
        pymysql_driver._handshake(conn, sock, read_timeout, write_timeout)
    assert 0.25 <= time.monotonic() - started < 2.0
    assert "timed out" in str(info.value)
    assert sock.fileno() == -1  # closed
