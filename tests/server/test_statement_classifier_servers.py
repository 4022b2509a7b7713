"""The statement classifier against real read-only replicas (a PostgreSQL hot standby; a
MariaDB replica with read_only=1 whose application user lacks READ ONLY ADMIN).

Every runnable row of the scenario tables that the classifier sends to a replica runs there
without error; every row marked ``refused`` fails there with the server's read-only error
(SQLSTATE 25006; MariaDB 1290, 1836 or 1792). The per-cluster lookup queries find the schema's
own functions that may write, and the classifier built from them answers as the tables say.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from pymysql.constants import CLIENT
from statement_corpus import FIXTURE_FUNCTIONS, Row, rows

from clusterdb.core.statement import Classifier, writing_functions, writing_functions_query
from clusterdb.core.statement_lex import Dialect
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

READ_ONLY_ERRORS: dict[Dialect, set[Any]] = {
    "postgresql": {"25006"},
    "mysql": {1290, 1836, 1792},
}

PG_SCHEMA = [
    "CREATE TABLE t (id int PRIMARY KEY, a int, b text)",
    "CREATE TABLE u (id int PRIMARY KEY, t_id int)",
    "CREATE TABLE log (n serial PRIMARY KEY)",
    "CREATE SEQUENCE s",
    "CREATE FUNCTION bump() RETURNS int LANGUAGE sql VOLATILE"
    " AS $$ INSERT INTO log DEFAULT VALUES RETURNING n $$",
    "CREATE FUNCTION pure_add(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 + $2 $$",
    "CREATE FUNCTION stable_count() RETURNS bigint LANGUAGE sql STABLE"
    " AS $$ SELECT count(*) FROM t $$",
    "CREATE PROCEDURE p() LANGUAGE sql AS $$ INSERT INTO log DEFAULT VALUES $$",
    "INSERT INTO t VALUES (1, 1, 'one'), (2, 2, 'two')",
    "INSERT INTO u VALUES (1, 1)",
]
MARIADB_SCHEMA = [
    "CREATE TABLE t (id int PRIMARY KEY, a int, b text)",
    "CREATE TABLE u (id int PRIMARY KEY, t_id int)",
    "CREATE TABLE log (n int AUTO_INCREMENT PRIMARY KEY)",
    "CREATE SEQUENCE s",
    "INSERT INTO t VALUES (1, 1, 'one'), (2, 2, 'two')",
    "INSERT INTO u VALUES (1, 1)",
]
# Created by the administrator, run with the caller's rights so that the application user's
# read_only applies inside them too. Binary logging refuses a function that may write unless
# its creator is trusted, on the replica too (this module's own cluster).
MARIADB_ROUTINES = [
    "CREATE FUNCTION bump() RETURNS int MODIFIES SQL DATA SQL SECURITY INVOKER"
    " BEGIN INSERT INTO log VALUES (NULL); RETURN 1; END",
    "CREATE FUNCTION touch() RETURNS int SQL SECURITY INVOKER"
    " BEGIN INSERT INTO log VALUES (NULL); RETURN 1; END",
    "CREATE FUNCTION pure_add(a int, b int) RETURNS int DETERMINISTIC NO SQL"
    " SQL SECURITY INVOKER RETURN a + b",
    "CREATE FUNCTION reader() RETURNS int READS SQL DATA SQL SECURITY INVOKER"
    " RETURN (SELECT count(*) FROM t)",
    "CREATE PROCEDURE p() SQL SECURITY INVOKER INSERT INTO log VALUES (NULL)",
]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresCluster]:
    with PostgresCluster(replicas=1) as cluster:
        for sql in PG_SCHEMA:
            cluster.execute(cluster.primary, sql, admin=False)
        cluster.wait_caught_up()
        yield cluster


@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDBCluster]:
    with MariaDBCluster(replicas=1) as cluster:
        for sql in MARIADB_SCHEMA:
            cluster.execute(cluster.primary, sql, admin=False)
        for node in cluster.nodes:
            cluster.execute(node, "SET GLOBAL log_bin_trust_function_creators = 1")
        for sql in MARIADB_ROUTINES:
            cluster.execute(cluster.primary, sql)
        cluster.wait_caught_up()
        yield cluster


def _run_pg(cluster: Cluster, row: Row) -> None:
    kwargs = cluster.connect_kwargs(cluster.replicas[0], via_proxy=False)
    with psycopg.connect(**kwargs, autocommit=True, connect_timeout=10) as conn:
        cur = conn.cursor()
        if row.sql.startswith("COPY") and "STDIN" in row.sql:
            with cur.copy(row.sql):
                pass
        elif row.sql.startswith("COPY"):
            with cur.copy(row.sql) as copy:
                for _ in copy:
                    pass
        else:
            cur.execute(row.sql, row.params)
            while cur.nextset():
                pass


def _run_mariadb(cluster: Cluster, row: Row) -> None:
    kwargs = cluster.connect_kwargs(cluster.replicas[0], via_proxy=False)
    conn = pymysql.connect(
        **kwargs, autocommit=True, connect_timeout=10, client_flag=CLIENT.MULTI_STATEMENTS
    )
    with contextlib.closing(conn):
        cur = conn.cursor()
        cur.execute(row.sql, row.params)
        while cur.nextset():
            pass


def _error_code(dialect: Dialect, exc: Exception) -> Any:
    if dialect == "postgresql":
        return getattr(exc, "sqlstate", None)
    return exc.args[0] if exc.args else None


def _check(cluster: Cluster, dialect: Dialect, classifier: Classifier) -> None:
    """Classify every row as the tables say, run the replica rows and the refused rows on the
    replica; assert on all of them at once (the list of failures says what went wrong)."""
    run = _run_pg if dialect == "postgresql" else _run_mariadb
    wrong = []
    checked = refused = 0
    for row in rows():
        if row.dialect != dialect:
            continue
        mismatch = row.mismatch(classifier.classify(row.sql))
        if mismatch is not None:
            wrong.append(f"{row.id} {row.sql!r}: {mismatch}")
        if not row.run or not (row.refused or row.target == "replica"):
            continue
        try:
            run(cluster, row)
            error = None
        except Exception as exc:  # the server's error is what is checked
            error = exc
        code = None if error is None else _error_code(dialect, error)
        if row.refused and code not in READ_ONLY_ERRORS[dialect]:
            wrong.append(f"{row.id} {row.sql!r}: expected a read-only error, got {error!r}")
        elif not row.refused and error is not None:
            wrong.append(f"{row.id} {row.sql!r}: failed on the replica: {error!r}")
        checked += 1
        refused += row.refused
    assert not wrong, "\n".join(wrong)
    assert checked >= 90 and refused >= 30, (checked, refused)


@pytest.mark.postgres
def test_postgresql_replica_runs_what_the_classifier_sends_it(pg: PostgresCluster) -> None:
    rows_ = pg.execute(pg.replicas[0], writing_functions_query("postgresql"), admin=False)
    found = writing_functions(rows_, "postgresql")
    assert found == {"bump"}, found
    assert found <= FIXTURE_FUNCTIONS
    _check(pg, "postgresql", Classifier("postgresql", found))


@pytest.mark.mariadb
def test_mariadb_replica_runs_what_the_classifier_sends_it(mariadb: MariaDBCluster) -> None:
    rows_ = mariadb.execute(mariadb.replicas[0], writing_functions_query("mysql"), admin=False)
    found = writing_functions(rows_, "mysql")
    assert found == {"bump", "touch"}, found
    _check(mariadb, "mysql", Classifier("mysql", found))
