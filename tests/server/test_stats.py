"""Stats agree exactly with the attempts made, late losers included, also under concurrency.

The server is the independent witness: PostgreSQL counts every session established in a
database (``pg_stat_database.sessions``, per node), so each node's ``connects`` must equal the
sessions it gained. Every measurement is itself one session, hence the ``- 1``.
"""

from __future__ import annotations

import threading

import psycopg
import pytest
from connect_support import registered, settled

import clusterdb
from clusterdb.testing.cluster import TestNode
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


def sessions(pg: PostgresCluster, node: TestNode) -> int:
    sql = "SELECT sessions FROM pg_stat_database WHERE datname = %s"
    return int(pg.execute(node, sql, (pg.dbname,))[0][0])


def sessions_gained(pg: PostgresCluster, before: dict[str, int]) -> dict[str, int]:
    return {n.name: sessions(pg, n) - before[n.name] - 1 for n in pg.nodes}


def test_a_race_over_three_nodes_counts_all_three_attempts(pg_cluster: PostgresCluster) -> None:
    before = {n.name: sessions(pg_cluster, n) for n in pg_cluster.nodes}
    with registered(pg_cluster) as name:
        clusterdb.connect(name).close()  # nothing known: every node is raced
        snap = settled(name)
        assert (snap.connects, snap.failures) == (1, 0)
        assert sum(n.connects + n.connect_errors for n in snap.nodes) == 3
        assert sum(n.discarded for n in snap.nodes) == sum(n.connects for n in snap.nodes) - 1
        assert sessions_gained(pg_cluster, before) == {n.name: n.connects for n in snap.nodes}


def test_a_refused_node_in_the_race_counts_as_an_error(pg_cluster: PostgresCluster) -> None:
    refused = pg_cluster.nodes[2]
    refused.proxy.set_mode("refuse")
    with registered(pg_cluster) as name:
        clusterdb.connect(name).close()
        snap = settled(name)
        assert [(n.name, n.connects, n.connect_errors) for n in snap.nodes] == [
            (n.name, int(n is not refused), int(n is refused)) for n in pg_cluster.nodes
        ]
        assert sum(n.discarded for n in snap.nodes) == 1
        assert snap.node(refused.name).last_error is not None
        assert snap.node(refused.name).last_error_at is not None


def test_32_threads_connecting_at_once_leave_exact_totals(pg_cluster: PostgresCluster) -> None:
    threads_count, rounds = 32, 5
    before = {n.name: sessions(pg_cluster, n) for n in pg_cluster.nodes}
    outcomes: list[bool] = []
    lock = threading.Lock()
    with registered(pg_cluster, connect_timeout=30.0) as name:
        barrier = threading.Barrier(threads_count)

        def worker() -> None:
            barrier.wait()
            for _ in range(rounds):
                try:
                    conn = clusterdb.connect(name)
                except psycopg.OperationalError:
                    ok = False
                else:
                    conn.close()
                    ok = True
                with lock:
                    outcomes.append(ok)

        threads = [threading.Thread(target=worker) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(outcomes) == threads_count * rounds
        successes = outcomes.count(True)
        assert successes == len(outcomes)  # every node is up: no connect() may fail

        snap = settled(name)
        assert (snap.connects, snap.failures) == (successes, 0)
        assert sum(n.connects - n.discarded for n in snap.nodes) == successes
        assert all(n.pending == 0 and n.connect_errors == 0 for n in snap.nodes)
        assert sessions_gained(pg_cluster, before) == {n.name: n.connects for n in snap.nodes}


def test_reset_zeroes_counters_and_keeps_estimates(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name, registered(pg_cluster) as other:
        for _ in range(3):
            clusterdb.connect(name).close()
            clusterdb.connect(other).close()
        settled(name)
        settled(other)
        everything = clusterdb.stats.snapshot()
        assert {name, other} <= set(everything)
        assert everything[name].connects == 3

        clusterdb.stats.reset(name)
        snap = clusterdb.stats.snapshot(name)
        assert (snap.connects, snap.failures) == (0, 0)
        for node in snap.nodes:
            assert (node.connects, node.connect_errors, node.discarded) == (0, 0, 0)
            assert node.last_success_at is None and node.state_changes == 0
            assert node.latency_ms is not None and node.state == "up"
        assert clusterdb.stats.snapshot(other).connects == 3  # only the named cluster

        clusterdb.stats.reset()
        assert clusterdb.stats.snapshot(other).connects == 0
