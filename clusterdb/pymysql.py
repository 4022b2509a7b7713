"""PEP 249 module over PyMySQL, connecting through clusterdb.

Exceptions, type objects and constructors are PyMySQL's own objects, so code written for
PyMySQL works unchanged and ``conn.Error is clusterdb.pymysql.Error`` holds::

    import clusterdb.pymysql
    conn = clusterdb.pymysql.connect("main")   # a pymysql.connections.Connection
"""

from __future__ import annotations

from typing import Any

import pymysql
from pymysql import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    DatabaseError,
    DataError,
    Date,
    DateFromTicks,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
)

from clusterdb.core.description import WantedRole
from clusterdb.runtime import process
from clusterdb.runtime.causal import connect_after

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
]

apilevel: str = pymysql.apilevel
threadsafety: int = pymysql.threadsafety
paramstyle: str = pymysql.paramstyle


def connect(
    cluster_name: str, *, role: WantedRole = "any", after: str | None = None, **overrides: Any
) -> Any:
    """A PyMySQL connection to a node of ``cluster_name``; see :func:`clusterdb.connect`
    (``after``: a read-your-writes token)."""
    cluster = process.get_for_driver(cluster_name, "pymysql", __name__)
    return connect_after(cluster, role, overrides, after)
