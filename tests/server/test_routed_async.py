"""connect_async(role="auto") against real clusters: the routed connection on the event loop
(psycopg's AsyncConnection; asyncmy for MariaDB), with the thread version's rules."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncmy.errors
import psycopg
import pytest
from connect_support import registered
from routed_support import make_table, table_name

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


async def _whoami(cur: clusterdb.AsyncRoutedCursor, cluster: Cluster) -> str:
    await cur.execute(cluster.WHOAMI_SQL)
    row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def _routes(name: str, cluster: Cluster, t: str, temp_sql: str) -> None:
    primary = cluster.primary.name
    async with await clusterdb.connect_async(name, role="auto") as conn:
        assert isinstance(conn, clusterdb.AsyncRoutedConnection)
        cur = conn.cursor()
        assert await _whoami(cur, cluster) != primary
        await cur.execute(f"INSERT INTO {t} VALUES (%s, %s)", (1, "a"))
        assert conn.last_target == "primary"
        await conn.set_autocommit(False)  # a transaction mixing reads and writes: the primary
        await cur.execute(f"INSERT INTO {t} VALUES (2, 'b')")
        await cur.execute(f"SELECT count(*) FROM {t}")
        assert await cur.fetchone() == (2,)
        assert conn.in_transaction == "primary"
        await conn.commit()
        await conn.set_autocommit(True)
        cluster.wait_caught_up()
        assert await _whoami(cur, cluster) != primary
        await cur.execute(temp_sql)  # session state: pinned from now on
        await cur.execute("SELECT v FROM tmp_a")
        assert await cur.fetchall() in ([(1,)], ((1,),))
        assert conn.pinned == "temporary table"
        assert await _whoami(cur, cluster) == primary
        await cur.close()
    assert conn.closed


@pytest.mark.postgres
def test_pg_async_routed_connection(pg_cluster: PostgresCluster) -> None:
    t = table_name()
    make_table(pg_cluster, t)
    with registered(pg_cluster) as name:
        asyncio.run(_routes(name, pg_cluster, t, "CREATE TEMP TABLE tmp_a AS SELECT 1 AS v"))

        async def failing() -> None:
            conn = await clusterdb.connect_async(name, role="auto")
            try:
                cur = conn.cursor()
                with pytest.raises(psycopg.errors.UndefinedTable):
                    await cur.execute("SELECT * FROM no_such_table")
                async with conn.transaction():
                    await cur.execute(f"DELETE FROM {t} WHERE id = 2")
                    assert conn.in_transaction == "primary"
                assert conn.in_transaction is None
            finally:
                await conn.close()

        asyncio.run(failing())
    assert pg_cluster.execute(pg_cluster.primary, f"SELECT id FROM {t}", admin=False) == [(1,)]


@pytest.mark.mariadb
def test_mariadb_async_routed_connection(mariadb_cluster: MariaDBCluster) -> None:
    t = table_name()
    make_table(mariadb_cluster, t)
    with registered(mariadb_cluster) as name:
        sql = "CREATE TEMPORARY TABLE tmp_a AS SELECT 1 AS v"
        asyncio.run(_routes(name, mariadb_cluster, t, sql))

        async def failing() -> None:
            async with await clusterdb.connect_async(name, role="auto") as conn:
                with pytest.raises(asyncmy.errors.ProgrammingError):
                    await conn.cursor().execute("SELECT * FROM no_such_table")

        asyncio.run(failing())


@pytest.mark.postgres
def test_pg_async_write_then_read_is_never_stale(pg_cluster: PostgresCluster) -> None:
    """50 write-then-read cycles with one replica 1 s late; then a second routed connection
    started after the first one's token (another request) reads the last row at once."""
    t = table_name()
    make_table(pg_cluster, t)
    pg_cluster.set_replication_delay(pg_cluster.replicas[0], 1)
    primary = pg_cluster.primary.name
    node = "current_setting('clusterdb_test.node_name')"
    with registered(pg_cluster) as name:

        async def main() -> tuple[int, int, Any]:
            stale = on_replica = 0
            async with await clusterdb.connect_async(name, role="auto") as conn:
                cur = conn.cursor()
                for i in range(50):
                    await cur.execute(f"INSERT INTO {t} VALUES (%s, 'x')", (i,))
                    await cur.execute(f"SELECT v, {node} FROM {t} WHERE id = %s", (i,))
                    row = await cur.fetchone()
                    stale += row is None
                    on_replica += row is not None and row[1] != primary
                await cur.execute(f"INSERT INTO {t} VALUES (999, 'last')")
                token = await clusterdb.causal_token_async(conn.primary_connection)
            async with await clusterdb.connect_async(name, role="auto", after=token) as other:
                cur = other.cursor()
                await cur.execute(f"SELECT v FROM {t} WHERE id = 999")
                last = await cur.fetchone()
            return stale, on_replica, last

        stale, on_replica, last = asyncio.run(main())
    assert stale == 0 and last == ("last",)
    assert on_replica >= 45, on_replica
