"""clusterdb.sqlalchemy.create_async_engine: SQLAlchemy's asyncio engine whose connections come
from connect_async() and whose pool follows the cluster as the sync engine's does (issues 13
and 14): queries, node_of/fits on its connections, and the MariaDB switchover under writers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy
from async_support import AsyncWorkload
from connect_support import registered, settled
from health_support import ConnectLoop
from pools_support import first_success_on, ids_table, missing_ids

import clusterdb
import clusterdb.sqlalchemy
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

SETTLE = 1.0  # the pools issue's bound: no failed write later than this after the switchover


@pytest.mark.postgres
def test_async_engine_runs_queries_on_its_role_and_its_connections_are_known(
    pg_cluster: PostgresCluster,
) -> None:
    with registered(pg_cluster) as name:
        engine = clusterdb.sqlalchemy.create_async_engine(name, role="replica", pool_size=2)
        watch = clusterdb.sqlalchemy.watch_of(engine.sync_engine)
        assert watch is not None

        async def main() -> tuple[str, Any, bool]:
            try:
                async with engine.connect() as conn:
                    served = (await conn.execute(sqlalchemy.text(pg_cluster.WHOAMI_SQL))).scalar()
                    raw = await conn.get_raw_connection()
                    ref = clusterdb.node_of(raw.dbapi_connection)  # SQLAlchemy's adapter
                    fits = clusterdb.fits(raw.driver_connection, "replica")  # psycopg's own
                    assert ref is not None and ref.node == served
                    return str(served), ref, fits
            finally:
                await engine.dispose()

        served, ref, fits = asyncio.run(main())
        assert served in {n.name for n in pg_cluster.replicas}
        assert fits
        assert watch.counts.get(ref.node, 0) == 0  # closed by dispose(): counted out
        snap = settled(name)
        assert snap.connects >= 1 and snap.failures == 0


@pytest.mark.mariadb
def test_create_async_engine_speaks_asyncmy_to_a_pymysql_cluster(
    mariadb_cluster: MariaDBCluster,
) -> None:
    with registered(mariadb_cluster, ssl_disabled=True) as name:
        engine = clusterdb.sqlalchemy.create_async_engine(name, role="primary")
        assert engine.url.drivername == "mysql+asyncmy"

        async def main() -> str:
            try:
                async with engine.connect() as conn:
                    sql = sqlalchemy.text(mariadb_cluster.WHOAMI_SQL)
                    return str((await conn.execute(sql)).scalar())
            finally:
                await engine.dispose()

        assert asyncio.run(main()) == mariadb_cluster.primary.name


@pytest.mark.mariadb
def test_mariadb_switchover_under_async_engine_writers(mariadb_cluster: MariaDBCluster) -> None:
    old, new = mariadb_cluster.primary, mariadb_cluster.replicas[0]
    with ids_table(mariadb_cluster) as table, registered(mariadb_cluster, monitor=True) as name:
        insert = sqlalchemy.text(f"INSERT INTO {table} (id) VALUES (:id)")
        engines: list[Any] = []

        async def setup() -> Callable[[int, int], Awaitable[str]]:
            engine = clusterdb.sqlalchemy.create_async_engine(
                name, role="primary", pool_size=4, max_overflow=0
            )
            engines.append(engine)

            async def write(task: int, key: int) -> str:
                async with engine.begin() as conn:
                    await conn.execute(insert, {"id": key})
                    raw = await conn.get_raw_connection()
                    ref = clusterdb.node_of(raw.dbapi_connection)
                assert ref is not None
                return ref.node

            return write

        async def teardown() -> None:
            await engines[0].dispose()

        with (
            AsyncWorkload(setup, 4, teardown) as work,
            ConnectLoop(mariadb_cluster, name, role="primary") as probe,
        ):
            work.wait_successes(40)
            mariadb_cluster.switchover(new)
            done = time.monotonic()
            time.sleep(SETTLE + 1.5)
        reached = first_success_on(work, new.name, done)
        connected = [x.at - done for x in probe.landings if x.at > done and x.node == new.name]
        late = work.failures_after(done + SETTLE)
        assert not late, f"{len(late)} writes failed > {SETTLE} s after: {late[:3]}"
        assert work.successes_between(done + SETTLE, time.monotonic()), "no write since"
        assert reached is not None and reached < 2 * SETTLE, reached
        assert connected and connected[0] < SETTLE, connected[:1]
        assert not missing_ids(mariadb_cluster, table, work.acked)
        assert old.name != new.name
