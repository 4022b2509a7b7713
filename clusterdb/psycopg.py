"""PEP 249 module over psycopg 3, connecting through clusterdb.

Exceptions, type objects and constructors are psycopg's own objects, so code written for
psycopg works unchanged and ``conn.Error is clusterdb.psycopg.Error`` holds::

    import clusterdb.psycopg
    conn = clusterdb.psycopg.connect("main", role="primary")   # a psycopg.Connection

:class:`Connection` lets psycopg_pool fill a pool from a cluster (the pool's conninfo is the
cluster name; its ``kwargs`` and ``connect_timeout`` reach clusterdb.connect()), and
:func:`check` makes the pool hand out only connections clusterdb would still choose::

    from psycopg_pool import ConnectionPool
    pool = ConnectionPool("main", connection_class=clusterdb.psycopg.Connection,
                          kwargs={"role": "primary"}, check=clusterdb.psycopg.check)

Its cursors (and ``commit()``) report errors to clusterdb (:func:`clusterdb.report_error`): a
read-only error or a lost connection makes clusterdb re-read every node's role at once.

:class:`AsyncConnection` fills an asyncio pool the same way (through clusterdb.connect_async())::

    from psycopg_pool import AsyncConnectionPool
    apool = AsyncConnectionPool("main", connection_class=clusterdb.psycopg.AsyncConnection)
"""

from __future__ import annotations

from collections.abc import Iterable
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
from psycopg.abc import Params
from psycopg.rows import Row, RowFactory, TupleRow, tuple_row

from clusterdb.core.description import WantedRole
from clusterdb.runtime import pooled, process
from clusterdb.runtime.causal import connect_after
from clusterdb.runtime.connect import connect as connect_cluster
from clusterdb.runtime.connect_async import connect_async

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "AsyncConnection",
    "Binary",
    "Connection",
    "Cursor",
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
    "check",
    "connect",
    "paramstyle",
    "threadsafety",
]

apilevel: str = psycopg.apilevel
threadsafety: int = psycopg.threadsafety
paramstyle: str = psycopg.paramstyle


def connect(
    cluster_name: str, *, role: WantedRole = "any", after: str | None = None, **overrides: Any
) -> psycopg.Connection[Any]:
    """A psycopg connection to a node of ``cluster_name``; see :func:`clusterdb.connect`
    (``after``: a read-your-writes token)."""
    cluster = process.get_for_driver(cluster_name, "psycopg", __name__)
    conn: psycopg.Connection[Any] = connect_after(cluster, role, overrides, after)
    return conn


class Cursor(psycopg.Cursor[Row]):
    """psycopg's cursor, reporting the errors of ``execute()`` and ``executemany()`` to
    clusterdb before raising them."""

    def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        try:
            return super().execute(query, params, prepare=prepare, binary=binary)
        except psycopg.Error as exc:
            pooled.report(self.connection, exc)
            raise

    def executemany(
        self, query: Any, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        try:
            super().executemany(query, params_seq, returning=returning)
        except psycopg.Error as exc:
            pooled.report(self.connection, exc)
            raise


class Connection(psycopg.Connection[TupleRow]):
    """A psycopg ``Connection`` whose ``connect()`` takes a cluster name instead of a conninfo.

    For APIs that build connections themselves from a class, such as psycopg_pool's
    ``connection_class``. The object returned is an instance of this class (or of a subclass
    it is called on), made by psycopg on the node clusterdb picked; its cursors are
    :class:`Cursor` (unless a ``cursor_factory`` is given) and it remembers the role it was
    asked for, which :func:`check` holds it to.
    """

    role: WantedRole = "any"

    def __init__(self, pgconn: Any, row_factory: RowFactory[Any] = tuple_row) -> None:
        super().__init__(pgconn, row_factory)
        self.cursor_factory = Cursor

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect to cluster ``conninfo``; ``kwargs`` as for :func:`clusterdb.connect`."""
        role = kwargs.pop("role", "any")
        kwargs["connection_class"] = cls
        conn: Self = _connect(conninfo, role, kwargs)
        conn.role = role
        return conn

    def commit(self) -> None:
        try:
            super().commit()
        except psycopg.Error as exc:
            pooled.report(self, exc)
            raise


def check(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's ``check=`` hook: raise (closing ``conn``, so the pool replaces it) when
    clusterdb would no longer hand ``conn`` out for the role it was asked for
    (:func:`clusterdb.fits`; :attr:`Connection.role`, else ``"any"``). No I/O."""
    role: WantedRole = getattr(conn, "role", "any")
    if not pooled.fits(conn, role):
        ref = pooled.node_of(conn)
        conn.close()
        raise OperationalError(f"clusterdb: {ref} no longer fits role {role}")


class AsyncConnection(psycopg.AsyncConnection[TupleRow]):
    """A psycopg ``AsyncConnection`` whose ``connect()`` takes a cluster name instead of a
    conninfo, and connects through :func:`clusterdb.connect_async`.

    For APIs that build connections themselves from a class, such as the
    ``connection_class`` of psycopg_pool's ``AsyncConnectionPool``. The object returned is
    an instance of this class (or of a subclass it is called on).
    """

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect to cluster ``conninfo``; ``kwargs`` as for :func:`clusterdb.connect_async`."""
        role = kwargs.pop("role", "any")
        kwargs["connection_class"] = cls
        cluster = process.get_for_driver(conninfo, "psycopg", __name__)
        conn: Self = await connect_async(cluster, role, kwargs)
        return conn


def _connect(name: str, role: WantedRole, overrides: dict[str, Any]) -> Any:
    return connect_cluster(process.get_for_driver(name, "psycopg", __name__), role, overrides)
