"""Libraries that take connections from a factory: SQLAlchemy (``creator=``) and psycopg_pool
(``connection_class=clusterdb.psycopg.Connection``)."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy
from connect_support import registered, settled, whoami
from psycopg_pool import ConnectionPool

import clusterdb
import clusterdb.psycopg
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


@pytest.mark.postgres
def test_sqlalchemy_engine_with_a_clusterdb_creator(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:
        engine = sqlalchemy.create_engine(
            "postgresql+psycopg://", creator=lambda: clusterdb.connect(name, role="primary")
        )
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text("CREATE TEMP TABLE t (x int)"))
                conn.execute(sqlalchemy.text("INSERT INTO t VALUES (1), (2)"))
                total = conn.execute(sqlalchemy.text("SELECT sum(x) FROM t")).scalar()
                node = conn.execute(sqlalchemy.text(pg_cluster.WHOAMI_SQL)).scalar()
            assert total == 3
            assert node == pg_cluster.primary.name
        finally:
            engine.dispose()
        assert settled(name).connects >= 1


@pytest.mark.mariadb
def test_sqlalchemy_engine_over_pymysql(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster) as name:
        engine = sqlalchemy.create_engine(
            "mysql+pymysql://", creator=lambda: clusterdb.connect(name)
        )
        try:
            with engine.connect() as conn:
                node = conn.execute(sqlalchemy.text(mariadb_cluster.WHOAMI_SQL)).scalar()
            assert node in {n.name for n in mariadb_cluster.nodes}
        finally:
            engine.dispose()


@pytest.mark.postgres
def test_psycopg_pool_fills_from_a_cluster(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:
        # The pool's conninfo is the cluster name; its kwargs reach clusterdb.connect().
        with ConnectionPool(
            name,
            connection_class=clusterdb.psycopg.Connection,
            kwargs={"role": "primary", "autocommit": True},
            min_size=2,
            max_size=4,
            open=True,
        ) as pool:
            pool.wait(timeout=20)
            with pool.connection() as conn:
                assert isinstance(conn, clusterdb.psycopg.Connection)
                assert isinstance(conn, psycopg.Connection)
                assert conn.autocommit is True
                assert whoami(pg_cluster, conn) == pg_cluster.primary.name
            stats = pool.get_stats()
            assert stats["connections_num"] >= 2 and stats.get("connections_errors", 0) == 0
        snap = settled(name)
        assert snap.connects == stats["connections_num"]
