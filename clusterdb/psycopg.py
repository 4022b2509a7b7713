"""PEP 249 module over psycopg 3, connecting through clusterdb.

Exceptions, type objects and constructors are psycopg's own objects, so code written for
psycopg works unchanged and ``conn.Error is clusterdb.psycopg.Error`` holds::

    import clusterdb.psycopg
    conn = clusterdb.psycopg.connect("main", role="primary")   # a psycopg.Connection

:func:`pool_kwargs` gives psycopg_pool a pool that follows the cluster (the pool's conninfo
is the cluster name, :class:`Connection` its ``connection_class``; :func:`check` at checkout
refuses a connection whose node no longer fits, :func:`reset` at return moves idle
connections between nodes by the same rules as clusterdb.sqlalchemy's engines)::

    from psycopg_pool import ConnectionPool
    pool = ConnectionPool(**clusterdb.psycopg.pool_kwargs("main", role="primary"), max_size=8)

Its cursors (and ``commit()``) report errors to clusterdb (:func:`clusterdb.report_error`): a
read-only error or a lost connection makes clusterdb re-read every node's role at once.
:func:`async_pool_kwargs` does the same for ``AsyncConnectionPool`` (:class:`AsyncConnection`,
through clusterdb.connect_async()).
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
from psycopg.rows import AsyncRowFactory, Row, RowFactory, TupleRow, tuple_row

from clusterdb.core.description import WantedRole
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.errors import ConfigError
from clusterdb.runtime import pool_hooks, pooled, process
from clusterdb.runtime.causal import connect_after
from clusterdb.runtime.connect import connect as connect_cluster
from clusterdb.runtime.connect_async import connect_async
from clusterdb.runtime.pool_balance import PoolBalance

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "AsyncConnection",
    "AsyncCursor",
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
    "async_pool_kwargs",
    "balance_of",
    "check",
    "check_async",
    "connect",
    "paramstyle",
    "pool_kwargs",
    "reset",
    "reset_async",
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
            pool_hooks.report(self.connection, exc)
            raise

    def executemany(
        self, query: Any, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        try:
            super().executemany(query, params_seq, returning=returning)
        except psycopg.Error as exc:
            pool_hooks.report(self.connection, exc)
            raise


class AsyncCursor(psycopg.AsyncCursor[Row]):
    """:class:`Cursor` for :class:`AsyncConnection`."""

    async def execute(
        self,
        query: Any,
        params: Any = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        try:
            return await super().execute(query, params, prepare=prepare, binary=binary)
        except psycopg.Error as exc:
            pool_hooks.report(self.connection, exc)
            raise

    async def executemany(
        self, query: Any, params_seq: Iterable[Params], *, returning: bool = False
    ) -> None:
        try:
            await super().executemany(query, params_seq, returning=returning)
        except psycopg.Error as exc:
            pool_hooks.report(self.connection, exc)
            raise


class Connection(psycopg.Connection[TupleRow]):
    """A psycopg ``Connection`` whose ``connect()`` takes a cluster name instead of a conninfo.

    For APIs that build connections themselves from a class, such as psycopg_pool's
    ``connection_class``. The object returned is an instance of this class (or of a subclass
    it is called on), made by psycopg on the node clusterdb picked; its cursors are
    :class:`Cursor` (unless a ``cursor_factory`` is given) and it remembers the role it was
    asked for, which :func:`check` holds it to. Given ``clusterdb_pool=`` (a
    :class:`~clusterdb.runtime.pool_balance.PoolBalance`, as :func:`pool_kwargs` puts in the
    pool's ``kwargs``), it is counted in that pool's balance until closed, and a connection
    that replaces one moved at checkin is asked of the node the move chose.
    """

    role: WantedRole = "any"
    _clusterdb_pool: PoolBalance | None = None

    def __init__(self, pgconn: Any, row_factory: RowFactory[Any] = tuple_row) -> None:
        super().__init__(pgconn, row_factory)
        self.cursor_factory = Cursor

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect to cluster ``conninfo``; ``kwargs`` as for :func:`clusterdb.connect`."""
        role = kwargs.pop("role", "any")
        balance: PoolBalance | None = kwargs.pop("clusterdb_pool", None)
        kwargs["connection_class"] = cls
        prefer = None if balance is None else balance.take_destination()
        conn: Self = connect_cluster(_cluster(conninfo), role, kwargs, prefer)
        conn.role = role
        pool_hooks.counted(conn, balance)
        return conn

    def commit(self) -> None:
        try:
            super().commit()
        except psycopg.Error as exc:
            pool_hooks.report(self, exc)
            raise

    def close(self) -> None:
        pool_hooks.uncounted(self)
        super().close()

    def __del__(self, *args: Any, **kwargs: Any) -> None:
        if "_clusterdb_pool" in self.__dict__:  # broken, discarded by the pool without close()
            pool_hooks.uncounted(self)
        super().__del__(*args, **kwargs)


def check(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's ``check=`` hook: raise (closing ``conn``, so the pool replaces it) when
    clusterdb would no longer hand ``conn`` out for the role it was asked for
    (:func:`clusterdb.fits`; :attr:`Connection.role`, else ``"any"``). No I/O."""
    if not pool_hooks.keeps(conn):
        conn.close()
        _refuse(conn)


def reset(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's ``reset=`` hook (at every return to the pool, the connection idle): for
    a connection of a pool made with :func:`pool_kwargs`, ends it when its node no longer fits
    or when it is to move to a node under its share (see the README's Rebalancing), so the
    pool replaces it through ``connect()``. Otherwise, and for other connections, nothing."""
    if pool_hooks.leaves(conn) and not pool_hooks.expired(conn):
        conn.close()


def pool_kwargs(cluster: str, role: WantedRole = "any", **kwargs: Any) -> dict[str, Any]:
    """The keywords of a psycopg_pool ``ConnectionPool`` that follows cluster ``cluster`` for
    ``role``: checked at checkout, rebalanced at return, errors reported::

        pool = ConnectionPool(**clusterdb.psycopg.pool_kwargs("main", role="replica"),
                              min_size=6, max_size=6)

    ``kwargs`` reach :func:`clusterdb.connect` (as the pool's ``kwargs`` would). Each call
    makes a new balance: one call per pool (:func:`balance_of` finds it again)."""
    return _pool_kwargs(cluster, role, kwargs, Connection, check, reset)


async def check_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """:func:`check` for psycopg_pool's ``AsyncConnectionPool``."""
    if not pool_hooks.keeps(conn):
        await conn.close()
        _refuse(conn)


async def reset_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """:func:`reset` for psycopg_pool's ``AsyncConnectionPool``."""
    if pool_hooks.leaves(conn) and not pool_hooks.expired(conn):
        await conn.close()


def async_pool_kwargs(cluster: str, role: WantedRole = "any", **kwargs: Any) -> dict[str, Any]:
    """:func:`pool_kwargs` for psycopg_pool's ``AsyncConnectionPool`` (connections from
    :func:`clusterdb.connect_async`)."""
    return _pool_kwargs(cluster, role, kwargs, AsyncConnection, check_async, reset_async)


def balance_of(pool: Any) -> PoolBalance | None:
    """The balance of a pool made with :func:`pool_kwargs` or :func:`async_pool_kwargs`
    (its connections per node, ``moved``, ``refused``), else None."""
    found = getattr(pool, "kwargs", None) or {}
    balance = found.get("clusterdb_pool")
    return balance if isinstance(balance, PoolBalance) else None


class AsyncConnection(psycopg.AsyncConnection[TupleRow]):
    """A psycopg ``AsyncConnection`` whose ``connect()`` takes a cluster name instead of a
    conninfo, and connects through :func:`clusterdb.connect_async`.

    For APIs that build connections themselves from a class, such as the
    ``connection_class`` of psycopg_pool's ``AsyncConnectionPool``. The object returned is
    an instance of this class (or of a subclass it is called on); ``role`` and
    ``clusterdb_pool`` as for :class:`Connection`.
    """

    role: WantedRole = "any"
    _clusterdb_pool: PoolBalance | None = None

    def __init__(self, pgconn: Any, row_factory: AsyncRowFactory[Any] = tuple_row) -> None:
        super().__init__(pgconn, row_factory)
        self.cursor_factory = AsyncCursor

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        """Connect to cluster ``conninfo``; ``kwargs`` as for :func:`clusterdb.connect_async`."""
        role = kwargs.pop("role", "any")
        balance: PoolBalance | None = kwargs.pop("clusterdb_pool", None)
        kwargs["connection_class"] = cls
        prefer = None if balance is None else balance.take_destination()
        conn: Self = await connect_async(_cluster(conninfo), role, kwargs, prefer)
        conn.role = role
        pool_hooks.counted(conn, balance)
        return conn

    async def commit(self) -> None:
        try:
            await super().commit()
        except psycopg.Error as exc:
            pool_hooks.report(self, exc)
            raise

    async def close(self) -> None:
        pool_hooks.uncounted(self)
        await super().close()

    def __del__(self, *args: Any, **kwargs: Any) -> None:
        if "_clusterdb_pool" in self.__dict__:
            pool_hooks.uncounted(self)
        super().__del__(*args, **kwargs)


def _pool_kwargs(
    cluster: str,
    role: WantedRole,
    kwargs: dict[str, Any],
    connection_class: type[Any],
    check_hook: Any,
    reset_hook: Any,
) -> dict[str, Any]:
    if role not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {role!r}", "role")
    _cluster(cluster)  # a name not registered (or not psycopg's) fails here, not in the pool
    balance = PoolBalance(role)
    return {
        "conninfo": cluster,
        "connection_class": connection_class,
        "kwargs": {**kwargs, "role": role, "clusterdb_pool": balance},
        "check": check_hook,
        "reset": reset_hook,
    }


def _refuse(conn: Any) -> None:
    role = getattr(conn, "role", "any")
    raise OperationalError(f"clusterdb: {pooled.node_of(conn)} no longer fits role {role}")


def _cluster(name: str) -> Any:
    return process.get_for_driver(name, "psycopg", __name__)


def _connect(name: str, role: WantedRole, overrides: dict[str, Any]) -> Any:
    return connect_cluster(_cluster(name), role, overrides)
