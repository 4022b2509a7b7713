"""PyMySQL queries for read-your-writes tokens: one row as a tuple, a replica's GTID position.

Kept apart from :mod:`clusterdb.drivers.pymysql` (the adapter) so each module keeps one job.
"""

from __future__ import annotations

from typing import Any

import pymysql.cursors
from pymysql.constants import SERVER_STATUS

from clusterdb.core.causal import Position, parse_gtids

__all__ = ["IN_TRANSACTION", "fetch_row", "is_mariadb", "replica_position"]

IN_TRANSACTION = SERVER_STATUS.SERVER_STATUS_IN_TRANS


def fetch_row(conn: Any, sql: str) -> tuple[Any, ...] | None:
    """The first row of ``sql`` as a tuple (a plain cursor, whatever the caller's cursor
    class); a transaction the query opened is rolled back, so none is left open."""
    was_open = conn.server_status & IN_TRANSACTION
    cursor = pymysql.cursors.Cursor(conn)
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    if not was_open and conn.server_status & IN_TRANSACTION:
        conn.rollback()
    return None if row is None else tuple(row)


def is_mariadb(conn: Any) -> bool:
    """True for a MariaDB server (GTID positions are MariaDB's; MySQL's differ)."""
    return "mariadb" in str(getattr(conn, "server_version", "")).lower()


def replica_position(conn: Any) -> Position | None:
    """A MariaDB replica's applied position (``@@gtid_current_pos``); None on MySQL."""
    if not is_mariadb(conn):
        return None
    row = fetch_row(conn, "SELECT @@gtid_current_pos")
    return parse_gtids(str(row[0] or "")) if row else None
