"""``query_timeout`` for PyMySQL and asyncmy: the drivers' own ``read_timeout``.

Both drivers bound each read from the server by ``read_timeout`` (PyMySQL a socket timeout,
asyncmy an ``asyncio.wait_for`` around each wait for data; PyMySQL also bounds each write by
``write_timeout``) and, when it passes, close the connection and raise their own
``OperationalError(2013, "Lost connection to MySQL server during query (timed out)")``. The
bound is on each silence of the server, not on a whole statement: a query that streams its
rows for longer than the bound is not cut, one whose server says nothing for that long is.

A ``read_timeout`` (``write_timeout``) the caller gave the driver wins over ``query_timeout``.
The connection's statement and transaction methods report their errors to clusterdb
(:func:`~clusterdb.drivers.query_bound.report_calls`), so a timed-out query marks its node down.
"""

from __future__ import annotations

from typing import Any

from clusterdb.drivers.query_bound import Report, report_calls, report_calls_async

__all__ = ["bound_asyncmy", "bound_pymysql"]

# What a cursor's execute() (query), a stored procedure's further results, and the
# transaction and session calls go through: the calls that wait for the server.
_CALLS = ("query", "next_result", "commit", "rollback", "begin", "ping", "select_db")


def bound_pymysql(_adapter: object, conn: Any, bound: float, report: Report) -> bool:
    """PyMySQL: ``read_timeout`` and ``write_timeout`` of ``conn`` (applied by PyMySQL at its
    next read or write), unless the caller set them; errors reported."""
    if conn._read_timeout is None:
        conn._read_timeout = bound
    if conn._write_timeout is None:
        conn._write_timeout = bound
    report_calls(conn, _CALLS, report)
    return True


def bound_asyncmy(_adapter: object, conn: Any, bound: float, report: Report) -> bool:
    """asyncmy: ``read_timeout`` of ``conn`` (writes never block the loop), unless the caller
    set it; errors reported."""
    if conn._read_timeout is None:
        conn._read_timeout = bound
    report_calls_async(conn, _CALLS, report)
    return True
