"""clusterdb.sqlalchemy.sessionmaker: the real SQLAlchemy ORM over two engines of a real
cluster; flushes, DML and with_for_update on the primary, other reads on a replica, and a
session's reads after its own commit never stale."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from connect_support import registered
from routed_support import make_table, table_name
from sqlalchemy import Column, Integer, String, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

import clusterdb.sqlalchemy
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


def _model(t: str) -> Any:
    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = t
        id = Column(Integer, primary_key=True)
        v = Column(String(20))

    return Item


def _node_of(cluster: Cluster) -> Any:
    if isinstance(cluster, PostgresCluster):
        return literal_column("current_setting('clusterdb_test.node_name')")
    return literal_column("@@report_host")


def _sync_session(cluster: Cluster) -> None:
    t = table_name()
    make_table(cluster, t)
    item = _model(t)
    primary = cluster.primary.name
    with registered(cluster, causal_wait=0.3) as name:
        maker = clusterdb.sqlalchemy.sessionmaker(name, engine_kwargs={"pool_size": 2})
        try:
            with maker() as session:
                assert session.execute(text(cluster.WHOAMI_SQL)).scalar() != primary
                session.add_all([item(id=1, v="a"), item(id=2, v="b")])
                session.flush()  # the flush on the primary; this transaction's reads too
                assert session.execute(select(_node_of(cluster))).scalar() == primary
                got = session.get(item, 1)
                assert got is not None and got.v == "a"
                session.execute(update(item).where(item.id == 2).values(v="c"))
                session.commit()
                # read-your-writes: a replica that has applied the commit, or the primary
                rows = session.execute(select(item.v).order_by(item.id)).scalars().all()
                assert rows == ["a", "c"]
                for replica in cluster.replicas:  # from now on every replica is 2 s late
                    cluster.set_replication_delay(replica, 2)
                session.add(item(id=3, v="d"))
                session.commit()
                rows = session.execute(select(item.v).order_by(item.id)).scalars().all()
                assert rows == ["a", "c", "d"]  # not stale: the primary, after causal_wait
            for replica in cluster.replicas:
                cluster.set_replication_delay(replica, 0)
            cluster.wait_caught_up()
            with maker() as session:  # a new session, writes settled: reads on replicas
                nodes = [session.execute(text(cluster.WHOAMI_SQL)).scalar() for _ in range(10)]
                assert primary not in nodes
                assert session.scalars(select(item.v).order_by(item.id)).all() == ["a", "c", "d"]
                locked = select(item.id, _node_of(cluster)).with_for_update()
                assert {r[1] for r in session.execute(locked)} == {primary}
                session.rollback()
                result: Any = session.execute(text(f"UPDATE {t} SET v = 'e' WHERE id = 1"))
                assert result.rowcount == 1
                session.commit()
            rows = cluster.execute(cluster.primary, f"SELECT v FROM {t} WHERE id = 1", admin=False)
            assert rows == [("e",)]
        finally:
            for engine in maker.kw["clusterdb_engines"]:
                engine.dispose()


@pytest.mark.postgres
def test_pg_sessions_route_reads_and_writes(pg_cluster: PostgresCluster) -> None:
    _sync_session(pg_cluster)


@pytest.mark.mariadb
def test_mariadb_sessions_route_reads_and_writes(mariadb_cluster: MariaDBCluster) -> None:
    _sync_session(mariadb_cluster)


@pytest.mark.postgres
def test_pg_async_sessions_route_reads_and_writes(pg_cluster: PostgresCluster) -> None:
    t = table_name()
    make_table(pg_cluster, t)
    item = _model(t)
    primary = pg_cluster.primary.name
    for replica in pg_cluster.replicas:
        pg_cluster.set_replication_delay(replica, 2)
    with registered(pg_cluster, causal_wait=0.3) as name:
        maker = clusterdb.sqlalchemy.async_sessionmaker(name, expire_on_commit=False)

        async def main() -> list[str]:
            async with maker() as session:
                first = await session.scalar(text(pg_cluster.WHOAMI_SQL))
                session.add(item(id=1, v="a"))
                await session.commit()
                v = await session.scalar(select(item.v).where(item.id == 1))
                await session.close()
            for engine in maker.kw["clusterdb_engines"]:
                await AsyncEngine(engine).dispose()
            return [str(first), str(v)]

        first, v = asyncio.run(main())
    assert first != primary
    assert v == "a"  # after its commit, the session reads its write (replicas are 2 s late)
