"""PEP 249 module over psycopg 3, connecting through clusterdb.

Exceptions, type objects and constructors are psycopg's own objects, so code written for
psycopg works unchanged and ``conn.Error is clusterdb.psycopg.Error`` holds::

    import clusterdb.psycopg
    conn = clusterdb.psycopg.connect("main", role="primary")   # a psycopg.Connection

:class:`Connection` lets psycopg_pool fill a pool from a cluster (the pool's conninfo is the
cluster name; its ``kwargs`` and ``connect_timeout`` reach clusterdb.connect())::

    from psycopg_pool import ConnectionPool
    pool = ConnectionPool("main", connection_class=clusterdb.psycopg.Connection)
"""

from __future__ import annotations

from typing import Any, Self

import psycopg
from psycopg import (
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
from psycopg.rows import TupleRow

from clusterdb.core.description import WantedRole
from clusterdb.runtime import process
from clusterdb.runtime.connect import connect as connect_cluster

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
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

apilevel: str = psycopg.apilevel
threadsafety: int = psycopg.threadsafety
paramstyle: str = psycopg.paramstyle


def connect(
    cluster_name: str, *, role: WantedRole = "any", **overrides: Any
) -> psycopg.Connection[Any]:
    """A psycopg connection to a node of ``cluster_name``; see :func:`clusterdb.connect`."""
    conn: psycopg.Connection[Any] = _connect(cluster_name, role, overrides)
    return conn


class Connection(psycopg.Connection[TupleRow]):
    """A psycopg ``Connection`` whose ``connect()`` takes a cluster name instead of a conninfo.

    For APIs that build connections themselves from a class, such as psycopg_pool's
    ``connection_class``. The object returned is an instance of this class (or of a subclass
    it is called on), made by psycopg on the node clusterdb picked.
    """

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect to cluster ``conninfo``; ``kwargs`` as for :func:`clusterdb.connect`."""
        role = kwargs.pop("role", "any")
        kwargs["connection_class"] = cls
        conn: Self = _connect(conninfo, role, kwargs)
        return conn


def _connect(name: str, role: WantedRole, overrides: dict[str, Any]) -> Any:
    return connect_cluster(process.get_for_driver(name, "psycopg", __name__), role, overrides)
