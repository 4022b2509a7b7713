"""drain / undrain on real servers (issue 4): a drained node gets no new connections (the
server says who answered, stats say ``drained``), undrained it gets them again; draining every
node leaves no node to connect to, and the error says so."""

from __future__ import annotations

import psycopg
import pymysql
import pytest
from connect_support import registered, settled, warm_up_until_first
from health_support import land, node_stats, until

import clusterdb
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


@pytest.mark.postgres
def test_a_drained_node_gets_no_new_connections_until_undrained(
    pg_cluster: PostgresCluster,
) -> None:
    favourite, *others = pg_cluster.nodes
    for node in others:
        node.proxy.set_delay(0.003)  # far behind: undrained, the favourite gets the connects
    with registered(pg_cluster) as name:
        warm_up_until_first(name, favourite.name)
        held = clusterdb.connect(name)  # open connections are left alone by drain
        clusterdb.drain(name, favourite.name)
        assert node_stats(name, favourite.name).drained is True
        before = settled(name).node(favourite.name).attempts
        landed = [land(pg_cluster, name) for _ in range(20)]
        assert favourite.name not in landed, landed
        # The favourite is the primary: with it drained, no node can serve "primary".
        with pytest.raises(clusterdb.NoSuitableNode, match=f"{favourite.name}: drained"):
            clusterdb.connect(name, role="primary")
        assert settled(name).node(favourite.name).attempts == before  # not even tried
        held.execute("SELECT 1")
        held.close()

        clusterdb.undrain(name, favourite.name)
        assert node_stats(name, favourite.name).drained is False
        took = until(lambda: land(pg_cluster, name) == favourite.name, timeout=5)
        assert took is not None
        assert land(pg_cluster, name, "primary") == favourite.name


@pytest.mark.mariadb
def test_draining_every_node_raises_no_suitable_node(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster) as name:
        land(mariadb_cluster, name)
        for node in mariadb_cluster.nodes:
            clusterdb.drain(name, node.name)
        assert all(n.drained for n in clusterdb.stats.snapshot(name).nodes)
        with pytest.raises(pymysql.err.OperationalError) as info:
            clusterdb.connect(name)
        error = info.value
        assert isinstance(error, clusterdb.NoSuitableNode)
        for node in mariadb_cluster.nodes:
            assert f"{node.name}: drained" in str(error), str(error)
        assert clusterdb.stats.snapshot(name).failures == 1

        # Draining the replica only: role="replica" has nothing, "prefer-replica" the primary.
        primary, replica = mariadb_cluster.nodes
        clusterdb.undrain(name, primary.name)
        assert land(mariadb_cluster, name, "prefer-replica") == primary.name
        with pytest.raises(clusterdb.NoSuitableNode, match=f"{replica.name}: drained"):
            clusterdb.connect(name, role="replica")
        clusterdb.undrain(name, replica.name)
        assert land(mariadb_cluster, name, "replica") == replica.name


@pytest.mark.postgres
def test_drain_names_an_unknown_node(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:
        with pytest.raises(clusterdb.InterfaceError, match="no node 'nope'"):
            clusterdb.drain(name, "nope")
        for node in pg_cluster.nodes:
            clusterdb.drain(name, node.name)
        with pytest.raises(psycopg.OperationalError, match="drained"):
            clusterdb.connect(name, role="primary")
