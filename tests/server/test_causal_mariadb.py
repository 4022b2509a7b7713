"""Read-your-writes tokens on real MariaDB servers (issue 15): a primary and a replica applying
events 1 s late (``MASTER_DELAY``). Through ``prefer-replica`` with a token no read is stale
(the replica once it has applied the write, within ``causal_wait``, else the primary); without
a token the late replica serves stale rows."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator

import causal_support
import pytest
from causal_support import node_name
from connect_support import registered

import clusterdb
import clusterdb.pymysql
from clusterdb.core.causal import Token, parse_token
from clusterdb.testing.mariadb import MariaDBCluster

pytestmark = pytest.mark.mariadb

CYCLES = 8  # each waits up to causal_wait (1 s) for the late replica: ~1 s a cycle
ASYNC_CYCLES = 5
Counter = collections.Counter[str]


@contextlib.contextmanager
def delayed_table(cluster: MariaDBCluster) -> Iterator[str]:
    """A fresh table, then the replica applying events 1 s late."""
    table = f"{cluster.dbname}.{{table}}"
    setup = (f"CREATE TABLE {table} (id int PRIMARY KEY)",)
    late = cluster.replicas[0]
    with causal_support.delayed_table(cluster, late, 1.0, setup, f"DROP TABLE {table}") as t:
        yield t


def cycles(name: str, table: str, start: int, count: int, token: bool) -> tuple[int, Counter]:
    """``count`` write-then-read cycles through prefer-replica: (stale reads, serving nodes)."""
    stale = 0
    served: Counter = collections.Counter()
    with contextlib.closing(clusterdb.connect(name, role="primary", autocommit=True)) as writer:
        for i in range(start, start + count):
            with writer.cursor() as cur:
                cur.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
            after = clusterdb.causal_token(writer) if token else None
            reader = clusterdb.connect(name, role="prefer-replica", after=after)
            with contextlib.closing(reader):
                with reader.cursor() as cur:
                    cur.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (i,))
                    row = cur.fetchone()
                served[node_name(reader)] += 1
            stale += row is None or row[0] != 1
    return stale, served


def test_a_token_gives_no_stale_read_through_prefer_replica(
    mariadb_cluster: MariaDBCluster,
) -> None:
    replica = mariadb_cluster.replicas[0].name
    with delayed_table(mariadb_cluster) as table, registered(mariadb_cluster) as name:
        stale, served = cycles(name, table, 1, CYCLES, token=True)
        stats = clusterdb.stats.snapshot(name)
        print(
            f"\nwith tokens: {stale} stale of {CYCLES}, served {dict(served)}, "
            f"waits {stats.causal_waits}, fallbacks {stats.causal_fallbacks}"
        )
        assert stale == 0, served
        assert stats.causal_fallbacks == served[mariadb_cluster.primary.name]

        stale_without, without = cycles(name, table, 1000, CYCLES, token=False)
        print(f"without: {stale_without} stale of {CYCLES}, served {dict(without)}")
        assert without[replica] == CYCLES  # prefer-replica: the replica, late or not
        assert stale_without > 0, without


def test_a_long_wait_is_served_by_the_late_replica(mariadb_cluster: MariaDBCluster) -> None:
    replica = mariadb_cluster.replicas[0].name
    with (
        delayed_table(mariadb_cluster) as table,
        registered(mariadb_cluster, causal_wait=10.0) as name,
    ):
        with contextlib.closing(clusterdb.connect(name, role="primary", autocommit=True)) as w:
            with w.cursor() as cur:
                cur.execute(f"INSERT INTO {table} VALUES (1)")
            token = clusterdb.causal_token(w)
        assert parse_token(token).kind == "mariadb"
        with contextlib.closing(clusterdb.connect(name, role="replica", after=token)) as c:
            assert node_name(c) == replica
            with c.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM {table}")
                assert cur.fetchone() == (1,)
        stats = clusterdb.stats.snapshot(name)
        assert (stats.causal_waits, stats.causal_fallbacks) == (1, 0)
        snap = clusterdb.probe(name)
        assert snap.node(replica).applied, snap.node(replica)
        assert snap.node(mariadb_cluster.primary.name).applied is None


def test_a_mariadb_token_of_another_cluster_is_refused(mariadb_cluster: MariaDBCluster) -> None:
    with causal_support.two_registrations(mariadb_cluster) as (one, other, token):
        conn = clusterdb.pymysql.connect(one, role="prefer-replica", after=token)
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        with pytest.raises(clusterdb.CausalTokenError, match=f"cluster '{one}' used on"):
            clusterdb.connect(other, role="prefer-replica", after=token)
        pg_token = str(Token(other, "pg", 1, "42"))
        with pytest.raises(clusterdb.CausalTokenError, match="a pg token used on mariadb"):
            clusterdb.connect(other, role="replica", after=pg_token)


def test_async_tokens_on_mariadb(mariadb_cluster: MariaDBCluster) -> None:
    async def run(name: str, table: str) -> tuple[int, Counter]:
        stale = 0
        served: Counter = collections.Counter()
        writer = await clusterdb.connect_async(name, role="primary", autocommit=True)
        try:
            for i in range(ASYNC_CYCLES):
                async with writer.cursor() as cur:
                    await cur.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
                token = await clusterdb.causal_token_async(writer)
                with pytest.raises(clusterdb.InterfaceError, match="causal_token_async"):
                    clusterdb.causal_token(writer)  # an asyncmy connection
                reader = await clusterdb.connect_async(name, role="prefer-replica", after=token)
                try:
                    async with reader.cursor() as cur:
                        await cur.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (i,))
                        row = await cur.fetchone()
                    served[node_name(reader)] += 1
                finally:
                    reader.close()
                stale += row is None or row[0] != 1
        finally:
            writer.close()
        return stale, served

    with delayed_table(mariadb_cluster) as table, registered(mariadb_cluster) as name:
        stale, served = asyncio.run(run(name, table))
        print(f"\nasync with tokens: {stale} stale of {ASYNC_CYCLES}, served {dict(served)}")
        assert stale == 0, served
