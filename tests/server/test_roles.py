"""Roles on real servers (issue 4): after the primary dies and a replica is promoted,
``role="primary"`` reaches the new primary within one heartbeat plus one connect and
``role="replica"`` no longer returns it, on PostgreSQL and MariaDB; with no replica up,
``"prefer-replica"`` goes to the primary and ``"replica"`` fails with an error naming the nodes.
"""

from __future__ import annotations

import time

import psycopg
import pymysql
import pytest
from connect_support import registered, settled
from health_support import describe_nodes, land, node_stats, until

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

HEARTBEAT = 0.5


def roles(name: str) -> list[str]:
    return [n.role for n in clusterdb.stats.snapshot(name).nodes]


def _promote_and_reach(harness: Cluster, name: str) -> tuple[float, int]:
    """Kill the primary, promote the first replica; then connect with role="primary" until
    it lands there. Seconds from promote() returning, and connects that failed meanwhile."""
    old, new = harness.nodes[0], harness.nodes[1]
    assert land(harness, name, "primary") == old.name
    old.kill()
    promoting = time.monotonic()
    harness.promote(new)
    promoted = time.monotonic()
    failed = 0

    def reached() -> bool:
        nonlocal failed
        try:
            return land(harness, name, "primary") == new.name
        except clusterdb.OperationalError:
            failed += 1  # the old primary, refused, until the monitor sees the new role
            return False

    took = until(reached, timeout=HEARTBEAT + 3.0)
    print(
        f"\n{harness.driver}: role=primary reached {new.name} {took} s after the promotion "
        f"({failed} connects failed meanwhile, heartbeat {HEARTBEAT} s; "
        f"promote() itself took {promoted - promoting:.2f} s)"
    )
    assert took is not None, describe_nodes(name)
    assert time.monotonic() - promoted < HEARTBEAT + 3.0
    assert node_stats(name, new.name).role == "primary"
    assert node_stats(name, old.name).state == "down"
    # The dead primary stays on the monitor's backoff: probed again and again, not forgotten.
    errors = node_stats(name, old.name).probe_errors
    assert until(lambda: node_stats(name, old.name).probe_errors >= errors + 2, 10) is not None
    return took, failed


@pytest.mark.postgres
def test_promotion_postgres(pg_cluster: PostgresCluster) -> None:
    other = pg_cluster.nodes[2]
    with registered(pg_cluster, monitor=True, heartbeat=HEARTBEAT, connect_timeout=2.0) as name:
        land(pg_cluster, name)
        assert until(lambda: roles(name) == ["primary", "replica", "replica"], 10) is not None
        _promote_and_reach(pg_cluster, name)
        # The other replica follows the new primary; role="replica" never returns the latter.
        landed = {land(pg_cluster, name, "replica") for _ in range(20)}
        assert landed == {other.name}
        assert land(pg_cluster, name, "prefer-replica") == other.name
        assert roles(name)[1:] == ["primary", "replica"]


@pytest.mark.mariadb
def test_promotion_mariadb_then_no_replica_left(mariadb_cluster: MariaDBCluster) -> None:
    old, new = mariadb_cluster.nodes
    with registered(mariadb_cluster, monitor=True, heartbeat=HEARTBEAT) as name:
        land(mariadb_cluster, name)
        assert until(lambda: roles(name) == ["primary", "replica"], 10) is not None
        _promote_and_reach(mariadb_cluster, name)

        # The old primary is dead, the promoted replica is the primary: no replica is up.
        assert land(mariadb_cluster, name, "prefer-replica") == new.name
        with pytest.raises(pymysql.err.OperationalError) as info:
            clusterdb.connect(name, role="replica")
        error = info.value
        assert isinstance(error, clusterdb.NoSuitableNode | clusterdb.AllNodesFailed)
        assert isinstance(error, clusterdb.OperationalError)
        text = str(error)
        print(f"role=replica with no replica up: {text}")
        assert old.name in text and new.name in text, text
        assert "wanted replica" in text


@pytest.mark.postgres
def test_prefer_replica_never_lands_on_the_primary_while_a_replica_is_up(
    pg_cluster: PostgresCluster,
) -> None:
    """Also on the very first connect, when every node is raced and no role is known yet."""
    primary = pg_cluster.nodes[0]
    first: list[str] = []
    for _ in range(10):
        with registered(pg_cluster) as name:
            first.append(land(pg_cluster, name, "prefer-replica"))
            later = {land(pg_cluster, name, "prefer-replica") for _ in range(10)}
            assert primary.name not in later, later
            snap = settled(name)
            # A primary that answered first was held aside, then closed unused.
            assert snap.node(primary.name).connects == snap.node(primary.name).discarded
    print(f"\nfirst prefer-replica connects of 10 fresh registrations: {first}")
    assert primary.name not in first, first


@pytest.mark.postgres
def test_no_replica_up_prefer_replica_goes_to_the_primary_replica_fails(
    pg_cluster: PostgresCluster,
) -> None:
    primary, *replicas = pg_cluster.nodes
    with registered(pg_cluster, monitor=True, connect_timeout=2.0) as name:
        assert land(pg_cluster, name, "replica") in {r.name for r in replicas}
        for node in replicas:
            node.kill()
        # Not yet known down: each replica is tried, fails, and the primary answers.
        for _ in range(5):
            assert land(pg_cluster, name, "prefer-replica") == primary.name
        assert clusterdb.stats.snapshot(name).failures == 0
        with pytest.raises(psycopg.OperationalError) as info:
            clusterdb.connect(name, role="replica")
        error = info.value
        assert isinstance(error, clusterdb.AllNodesFailed | clusterdb.NoSuitableNode)
        text = str(error)
        print(f"\nrole=replica with every replica dead: {text}")
        for node in replicas:
            assert node.name in text, text
        assert [n.state for n in clusterdb.stats.snapshot(name).nodes] == ["up", "down", "down"]
