"""connect(role="auto") against real clusters: each statement where it can run, session state
kept on the primary, transactions whole, reads on replicas."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql
import pytest
from connect_support import registered
from routed_support import (
    MARIADB_CORPUS,
    MARIADB_SESSION,
    PG_CORPUS,
    PG_SESSION,
    make_table,
    read_node,
    table_name,
)

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


def _matches(value: Any, expected: object) -> bool:
    if isinstance(expected, str):
        return expected in str(value)
    return bool(value == expected)


def _corpus(cluster: Cluster, corpus: list[tuple[str, str | None, object]], t: str) -> None:
    with registered(cluster) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        for sql, check, expected in corpus:
            cur.execute(sql.format(t=t))
            assert conn.last_target == "primary", sql
            if check is not None:
                cur.execute(check.format(t=t))
                row = cur.fetchone()
                assert row is not None and _matches(row[0], expected), (sql, row)
        assert conn.pinned is None or "sequence" in conn.pinned or "value" in conn.pinned


def _session(cluster: Cluster, session: list[tuple[str, str, object, str]]) -> None:
    with registered(cluster) as name:
        for sql, check, expected, reason in session:
            with clusterdb.connect(name, role="auto") as conn:
                cur = conn.cursor()
                assert read_node(cur, cluster) != cluster.primary.name
                assert conn.pinned is None
                cur.execute(sql)
                assert conn.pinned is not None and reason in conn.pinned, (sql, conn.pinned)
                cur.execute(check)
                row = cur.fetchone()
                assert row is not None and _matches(row[0], expected), (sql, row)
                assert conn.last_target == "primary"
                assert read_node(cur, cluster) == cluster.primary.name  # pinned from now on


@pytest.mark.postgres
def test_pg_statements_a_replica_refuses_run_on_the_primary(pg_cluster: PostgresCluster) -> None:
    t = table_name()
    make_table(pg_cluster, t)
    pg_cluster.execute(pg_cluster.primary, f"CREATE SEQUENCE {t}_seq", admin=False)
    pg_cluster.execute(pg_cluster.primary, f"INSERT INTO {t} VALUES (1, 'a')", admin=False)
    pg_cluster.wait_caught_up()
    _corpus(pg_cluster, PG_CORPUS, t)


@pytest.mark.postgres
def test_pg_session_state_pins_to_the_primary(pg_cluster: PostgresCluster) -> None:
    _session(pg_cluster, PG_SESSION)
    # the advisory lock was released by the session that took it: another one can take it
    rows = pg_cluster.execute(pg_cluster.primary, "SELECT pg_try_advisory_lock(4242)")
    assert rows == [(True,)]


@pytest.mark.mariadb
def test_mariadb_statements_a_replica_refuses_run_on_the_primary(
    mariadb_cluster: MariaDBCluster,
) -> None:
    t = table_name()
    make_table(mariadb_cluster, t)
    primary = mariadb_cluster.primary
    mariadb_cluster.execute(primary, f"CREATE SEQUENCE {t}_seq", admin=False)
    mariadb_cluster.execute(primary, f"INSERT INTO {t} VALUES (1, 'a')", admin=False)
    for node in mariadb_cluster.nodes:
        mariadb_cluster.execute(node, "SET GLOBAL log_bin_trust_function_creators = 1")
    mariadb_cluster.execute(
        primary,
        f"CREATE FUNCTION bump_{t}() RETURNS int MODIFIES SQL DATA SQL SECURITY INVOKER"
        f" BEGIN INSERT INTO {t} VALUES (1000, 'b'); RETURN 1; END",
    )
    mariadb_cluster.wait_caught_up()
    _corpus(mariadb_cluster, MARIADB_CORPUS, t)


@pytest.mark.mariadb
def test_mariadb_session_state_pins_to_the_primary(mariadb_cluster: MariaDBCluster) -> None:
    _session(mariadb_cluster, MARIADB_SESSION)
    rows = mariadb_cluster.execute(mariadb_cluster.primary, "SELECT IS_FREE_LOCK('lock_x')")
    assert rows == [(1,)]


def _mixed_transactions(cluster: Cluster, t: str) -> None:
    with registered(cluster) as name:
        with clusterdb.connect(name, role="auto") as conn:  # DB-API: autocommit off
            conn.autocommit = False
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {t} VALUES (1, 'a')")
            cur.execute(f"SELECT v FROM {t} WHERE id = 1")  # its own uncommitted write
            assert cur.fetchone() == ("a",)
            assert conn.in_transaction == "primary"
            cur.execute(f"UPDATE {t} SET v = 'b' WHERE id = 1")
            conn.commit()
            assert conn.in_transaction is None
        with clusterdb.connect(name, role="auto") as conn:  # BEGIN ... COMMIT statements
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {t} VALUES (2, 'c')")
            cur.execute(f"SELECT count(*) FROM {t}")
            assert cur.fetchone() == (2,)
            assert conn.last_target == "primary"
            cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.execute(f"INSERT INTO {t} VALUES (3, 'd')")
            cur.execute("ROLLBACK")
    rows = cluster.execute(cluster.primary, f"SELECT id, v FROM {t} ORDER BY id", admin=False)
    assert rows == [(1, "b"), (2, "c")]


@pytest.mark.postgres
def test_pg_transactions_mixing_reads_and_writes_commit(pg_cluster: PostgresCluster) -> None:
    t = table_name()
    make_table(pg_cluster, t)
    _mixed_transactions(pg_cluster, t)
    with registered(pg_cluster) as name, clusterdb.connect(name, role="auto") as conn:
        with conn.transaction():  # psycopg's transaction(): wholly on the primary
            cur = conn.cursor()
            cur.execute(f"INSERT INTO {t} VALUES (4, 'e')")
            cur.execute(f"SELECT count(*) FROM {t}")
            assert cur.fetchone() == (3,)
            assert conn.in_transaction == "primary"
        assert conn.in_transaction is None
        cur.execute("BEGIN READ ONLY")  # declared read-only: a replica
        assert read_node(cur, pg_cluster) != pg_cluster.primary.name
        cur.execute("COMMIT")


@pytest.mark.mariadb
def test_mariadb_transactions_mixing_reads_and_writes_commit(
    mariadb_cluster: MariaDBCluster,
) -> None:
    t = table_name()
    make_table(mariadb_cluster, t)
    _mixed_transactions(mariadb_cluster, t)


def _reads_on_replicas(cluster: Cluster, t: str) -> None:
    with registered(cluster) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        for i in range(20):
            cur.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, str(i)))
            assert conn.last_target == "primary"
        cluster.wait_caught_up()
        nodes = [read_node(cur, cluster) for _ in range(100)]
        on_replicas = sum(n != cluster.primary.name for n in nodes)
        assert on_replicas >= 90, nodes
        cur.execute(f"SELECT count(*) FROM {t}")
        assert cur.fetchone() == (20,)
        assert cur.rowcount == 1 and cur.description[0][0] is not None


@pytest.mark.postgres
def test_pg_plain_reads_go_to_replicas(pg_cluster: PostgresCluster) -> None:
    t = table_name()
    make_table(pg_cluster, t)
    _reads_on_replicas(pg_cluster, t)


@pytest.mark.mariadb
def test_mariadb_plain_reads_go_to_replicas(mariadb_cluster: MariaDBCluster) -> None:
    t = table_name()
    make_table(mariadb_cluster, t)
    _reads_on_replicas(mariadb_cluster, t)


@pytest.mark.postgres
def test_pg_errors_are_psycopg_s_and_the_connection_goes_on(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        with pytest.raises(psycopg.errors.UndefinedTable):
            cur.execute("SELECT * FROM no_such_table")
        with pytest.raises(psycopg.errors.UndefinedTable):
            cur.execute("DELETE FROM no_such_table")
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]
        assert isinstance(conn, clusterdb.RoutedConnection)
    assert conn.closed and conn.primary_connection is None
    with pytest.raises(psycopg.InterfaceError):
        conn.cursor()


@pytest.mark.mariadb
def test_mariadb_errors_are_pymysql_s(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        with pytest.raises(pymysql.err.ProgrammingError):
            cur.execute("SELECT * FROM no_such_table")
        assert cur.execute("SELECT 1") == 1  # PyMySQL's execute() returns the row count
        assert cur.fetchall() == ((1,),)


NODE_EXPR = {
    "psycopg": "current_setting('clusterdb_test.node_name')",
    "pymysql": "@@report_host",
}


def _write_then_read(cluster: Cluster, cycles: int, **options: Any) -> tuple[int, int]:
    """(stale reads, reads served by a replica) over ``cycles`` write-then-read cycles on one
    routed connection, with the first replica applying changes 1 s late."""
    t = table_name()
    make_table(cluster, t)
    cluster.set_replication_delay(cluster.replicas[0], 1)
    primary = cluster.primary.name
    stale = on_replica = 0
    with registered(cluster, **options) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        read = f"SELECT v, {NODE_EXPR[cluster.driver]} FROM {t} WHERE id = %s"
        for i in range(cycles):
            cur.execute(f"INSERT INTO {t} VALUES (%s, %s)", (i, str(i)))
            cur.execute(read, (i,))
            row = cur.fetchone()
            stale += row is None
            on_replica += row is not None and row[1] != primary
    return stale, on_replica


@pytest.mark.postgres
def test_pg_write_then_read_is_never_stale(pg_cluster: PostgresCluster) -> None:
    stale, on_replica = _write_then_read(pg_cluster, 100)
    print(f"write-then-read: {stale} stale, {on_replica} of 100 on a replica")
    assert stale == 0
    assert on_replica >= 90  # the other replica applies in time (or is waited for)


@pytest.mark.mariadb
def test_mariadb_write_then_read_is_never_stale(mariadb_cluster: MariaDBCluster) -> None:
    # its only replica is 1 s late: reads fall back to the primary after causal_wait
    stale, on_replica = _write_then_read(mariadb_cluster, 10, causal_wait=0.2)
    print(f"write-then-read: {stale} stale, {on_replica} of 10 on a replica")
    assert stale == 0


@pytest.mark.postgres
def test_pg_a_write_the_classifier_cannot_see_is_retried_on_the_primary(
    pg_cluster: PostgresCluster,
) -> None:
    """A view calling nextval() reads like a SELECT: the replica refuses it (25006), and the
    routed connection runs it on the primary instead, then sends that text there directly."""
    t = table_name()
    for sql in (f"CREATE SEQUENCE {t}_seq", f"CREATE VIEW {t}_v AS SELECT nextval('{t}_seq') AS n"):
        pg_cluster.execute(pg_cluster.primary, sql, admin=False)
    pg_cluster.wait_caught_up()
    with registered(pg_cluster) as name, clusterdb.connect(name, role="auto") as conn:
        cur = conn.cursor()
        assert read_node(cur, pg_cluster) != pg_cluster.primary.name
        got = []
        for _ in range(3):
            cur.execute(f"SELECT n FROM {t}_v")
            got.append(cur.fetchone())
            assert conn.last_target == "primary"
        assert got == [(1,), (2,), (3,)]
        assert read_node(cur, pg_cluster) != pg_cluster.primary.name  # other reads: replicas
        assert conn.pinned is None
