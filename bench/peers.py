"""The contenders clusterdb is measured against, and the driver settings both sides share.

Every comparison gives both sides the same driver keyword arguments (:func:`driver_settings`):
autocommit on, and for PyMySQL ``ssl_disabled=True``, since PyMySQL 1.2 otherwise builds an SSL
context on every connect (most of a local connect's time).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "Connect",
    "aws_available",
    "aws_connect",
    "aws_release",
    "close_quietly",
    "driver_settings",
    "psycopg_multihost",
    "pymysql_loop",
    "select_one",
    "timed",
    "vendor_connect",
    "whoami",
]

Connect = Callable[[], Any]
"""A zero-argument callable returning a new DB-API connection."""

# The AWS wrapper with no plugins (no Aurora topology, failover or monitoring) and its plain
# PostgreSQL dialect named, so it does not probe the server for Aurora/RDS on every connect:
# the cheapest way to run it against a plain PostgreSQL cluster.
AWS_OPTIONS: dict[str, Any] = {"plugins": "", "wrapper_dialect": "pg"}


def driver_settings(driver: str, *, hung: bool = False, timeout: int = 2) -> dict[str, Any]:
    """Driver keyword arguments used on both sides of every comparison.

    ``hung``: also bound a silent server (PyMySQL's ``connect_timeout`` covers only the TCP
    connect; a server that accepts and never answers blocks it without ``read_timeout``).
    """
    if driver == "psycopg":
        return {"autocommit": True, "connect_timeout": timeout}
    if driver == "pymysql":
        out: dict[str, Any] = {
            "autocommit": True,
            "ssl_disabled": True,
            "connect_timeout": timeout,
        }
        if hung:
            out["read_timeout"] = timeout
        return out
    raise ValueError(f"unknown driver {driver!r}")


def vendor_connect(driver: str, kwargs: Mapping[str, Any]) -> Any:
    """A connection from the vendor driver alone."""
    if driver == "psycopg":
        import psycopg

        return psycopg.connect(**kwargs)
    if driver == "pymysql":
        import pymysql

        return pymysql.connect(**kwargs)
    raise ValueError(f"unknown driver {driver!r}")


def psycopg_multihost(nodes: Sequence[Mapping[str, Any]], common: Mapping[str, Any]) -> Any:
    """libpq's own failover: ``host=a,b,c port=p,q,r``, tried in the order given."""
    import psycopg

    hosts = ",".join(str(n["host"]) for n in nodes)
    ports = ",".join(str(n["port"]) for n in nodes)
    return psycopg.connect(host=hosts, port=ports, **common)


def pymysql_loop(nodes: Sequence[Mapping[str, Any]], common: Mapping[str, Any]) -> Any:
    """What PyMySQL users write for failover: try each host in turn, keep the first that works."""
    import pymysql

    last: Exception | None = None
    for node in nodes:
        try:
            return pymysql.connect(host=node["host"], port=node["port"], **common)
        except pymysql.err.OperationalError as exc:
            last = exc
    assert last is not None
    raise last


def aws_available() -> bool:
    try:
        import aws_advanced_python_wrapper  # noqa: F401
    except Exception:
        return False
    return True


def aws_connect(kwargs: Mapping[str, Any]) -> Any:
    """A psycopg connection through the AWS Advanced Python Wrapper (see :data:`AWS_OPTIONS`)."""
    import psycopg
    from aws_advanced_python_wrapper import AwsWrapperConnection

    return AwsWrapperConnection.connect(psycopg.Connection.connect, "", **AWS_OPTIONS, **kwargs)


def aws_release() -> None:
    """Stop the wrapper's background threads, if it started any."""
    with contextlib.suppress(Exception):
        from aws_advanced_python_wrapper import release_resources

        release_resources()


def close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def select_one(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute("SELECT 1")
    cur.fetchone()
    cur.close()


def whoami(conn: Any, sql: str) -> str:
    """The node name the harness seeded on the server ``conn`` reached."""
    cur = conn.cursor()
    cur.execute(sql)
    row = cur.fetchone()
    cur.close()
    return str(row[0])


def timed(connect: Connect) -> tuple[float, Any]:
    """Seconds one connect took, and the connection."""
    t0 = time.perf_counter()
    conn = connect()
    return time.perf_counter() - t0, conn
