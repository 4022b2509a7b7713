"""``causal_token()`` on PyMySQL + MariaDB without a round trip: the session tracks
``last_gtid`` and its OK packets report it (clusterdb.drivers.pymysql_gtid). The statements a
session ran are counted by the server (``Com_select``, ``Questions``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from connect_support import registered

import clusterdb
from clusterdb.core.causal import parse_gtids, parse_token
from clusterdb.testing.mariadb import MariaDBCluster

pytestmark = pytest.mark.mariadb


def questions(conn: Any, counter: str = "Questions") -> int:
    """The statements this session sent so far (this one included), or those ``counter``
    counts (``Com_set_option``: the SET statements)."""
    with conn.cursor() as cur:
        cur.execute(f"SHOW SESSION STATUS LIKE '{counter}'")
        row = cur.fetchone()
    return int(row[1])


def server_last_gtid(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute("SELECT @@last_gtid")
        row = cur.fetchone()
    value = row[0]
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.contextmanager
def table_session(
    cluster: MariaDBCluster, suffix: str, autocommit: bool
) -> Iterator[tuple[str, Any, str]]:
    """(cluster name, a primary connection, a fresh table), the table dropped after."""
    table = f"{cluster.dbname}.gtid_track_{suffix}"
    with registered(cluster) as name:
        conn = clusterdb.connect(name, role="primary", autocommit=autocommit)
        with contextlib.closing(conn):
            with conn.cursor() as cur:
                cur.execute(f"CREATE OR REPLACE TABLE {table} (id int PRIMARY KEY)")
            yield name, conn, table
            with conn.cursor() as cur:
                cur.execute(f"DROP TABLE {table}")


@pytest.mark.parametrize("autocommit", [True, False])
def test_a_token_after_a_write_costs_no_round_trip(
    mariadb_cluster: MariaDBCluster, autocommit: bool
) -> None:
    with table_session(mariadb_cluster, str(int(autocommit)), autocommit) as (name, conn, table):
        for i in range(3):
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
            if not autocommit:
                conn.commit()
            before = questions(conn)
            token = clusterdb.causal_token(conn)
            after = questions(conn)
            assert after - before == 1, "causal_token() sent a statement"
            expected = server_last_gtid(conn)
            assert expected, "the server reports no last GTID after a write"
            assert parse_token(token, name).position == parse_gtids(expected)


def test_a_session_that_wrote_nothing_asks_the_server(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster) as name:
        conn = clusterdb.connect(name, role="primary", autocommit=True)
        with contextlib.closing(conn):
            before = questions(conn)
            token = clusterdb.causal_token(conn)
            assert questions(conn) - before == 2  # the token's SELECT, then this one
            with conn.cursor() as cur:
                cur.execute("SELECT @@gtid_current_pos")
                current = cur.fetchone()[0]
            assert parse_token(token, name).position == parse_gtids(str(current))


def test_tracking_sends_no_statement_more_at_connect(mariadb_cluster: MariaDBCluster) -> None:
    """Connect's SET NAMES carries the tracking: a fresh session has run as many SET
    statements as a plain PyMySQL one (SET NAMES, SET AUTOCOMMIT)."""
    with registered(mariadb_cluster) as name:
        for _ in range(2):  # the second connect pipelines SET NAMES with the handshake
            conn = clusterdb.connect(name, role="primary")
            with contextlib.closing(conn):
                with conn.cursor() as cur:
                    cur.execute("SELECT @@session_track_system_variables")
                    assert cur.fetchone() == ("last_gtid",)
                plain = _plain(mariadb_cluster)
                with contextlib.closing(plain):
                    sets = questions(plain, "Com_set_option")
                    assert sets >= 1
                    assert questions(conn, "Com_set_option") == sets


def _plain(cluster: MariaDBCluster) -> Any:
    import pymysql

    return pymysql.connect(**cluster.connect_kwargs(cluster.primary, via_proxy=False, admin=False))


def test_a_rolled_back_write_leaves_the_token(mariadb_cluster: MariaDBCluster) -> None:
    """A transaction rolled back gets no GTID: the token stays the last commit's, still free,
    and still what the server says."""
    with table_session(mariadb_cluster, "rollback", False) as (_, conn, table):
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (1)")
        conn.commit()
        committed = clusterdb.causal_token(conn)
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (2)")
        conn.rollback()
        before = questions(conn)
        assert clusterdb.causal_token(conn) == committed
        assert questions(conn) - before == 1
        assert parse_token(committed).position == parse_gtids(server_last_gtid(conn))
