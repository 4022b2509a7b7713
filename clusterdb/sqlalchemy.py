"""SQLAlchemy engines whose pool follows the cluster.

::

    import clusterdb.sqlalchemy
    engine = clusterdb.sqlalchemy.create_engine("main", role="primary", pool_size=8)

The engine's dialect is the cluster driver's (``postgresql+psycopg``, ``mysql+pymysql``,
``sqlite`` for sqlite3), its pool opens connections through :func:`clusterdb.connect`, and
clusterdb is wired into the pool's events:

* **checkout** refuses a connection whose node clusterdb would no longer hand out for the
  engine's role (down, drained, demoted, lagging, far slower: :func:`clusterdb.fits`), with
  ``DisconnectionError``: the pool opens a fresh one through connect() instead;
* **handle_error** reports every error to clusterdb (:func:`clusterdb.report_error`); a lost
  connection is a disconnect, and so is a read-only error on a ``role="primary"`` engine, so
  the pool drops that connection (and only that one: the others are judged at checkout);
* **checkin** moves idle connections between nodes (:class:`~clusterdb.core.rebalance.Rebalancer`)
  so the pool's connections spread over the nodes by clusterdb's weights, one connection at
  a time and spaced, never in a burst: the connection is closed and the pool's next new
  connection is asked of connect() on the node that is short.

A connection in use or in a transaction is never closed by clusterdb: checkin comes after the
pool's reset, checkout before the application has the connection.

:func:`create_async_engine` does the same for SQLAlchemy's asyncio engine (2.0.16+: its
``async_creator`` is :func:`clusterdb.connect_async`): ``postgresql+psycopg`` or
``mysql+asyncmy``, the same listeners on its pool (``engine.sync_engine``).

:func:`sessionmaker` (and :func:`async_sessionmaker`) make ORM sessions over two such engines,
``primary`` and ``prefer-replica``, that send each statement to one of them
(:class:`RoutingSession`).
"""

from __future__ import annotations

import weakref
from contextvars import ContextVar
from typing import Any

import sqlalchemy
from sqlalchemy import event, orm
from sqlalchemy.engine import AdaptedConnection, Connection, Engine, ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.util import await_only

from clusterdb.core.description import WantedRole
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.core.routing import SessionWrites
from clusterdb.core.statement import Dialect, classify
from clusterdb.errors import ConfigError
from clusterdb.runtime import freshness, pooled, process
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect as connect_cluster
from clusterdb.runtime.pool_balance import PoolBalance

__all__ = [
    "PoolWatch",
    "RoutingSession",
    "async_sessionmaker",
    "create_async_engine",
    "create_engine",
    "follow",
    "sessionmaker",
    "watch_of",
]

_READ_ROLES = ("replica", "prefer-replica")
_after: ContextVar[str | None] = ContextVar("clusterdb_sqlalchemy_after", default=None)
"""The token a routing session's next replica connection must have applied (set by its
get_bind, read by the replica engine's checkout and creator in the same context)."""

_URLS = {"psycopg": "postgresql+psycopg://", "pymysql": "mysql+pymysql://", "sqlite3": "sqlite://"}
_ASYNC_URLS = {"psycopg": "postgresql+psycopg://", "pymysql": "mysql+asyncmy://"}


def _dialect(
    cluster: str, role: WantedRole, engine_kwargs: dict[str, Any], urls: dict[str, str], make: str
) -> tuple[str, str]:
    """The cluster's driver and its dialect's URL in ``urls``; ``make``: the keyword of the
    engine function that clusterdb provides. Raises ConfigError for a bad role, that keyword
    given, or a driver without a dialect here."""
    if role not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {role!r}", "role")
    if make in engine_kwargs:
        raise ConfigError(f"clusterdb makes the connections: no {make}=", make)
    driver = process.get(cluster).adapter.name
    url = urls.get(driver)
    if url is None:
        raise ConfigError(
            f"no SQLAlchemy dialect known for driver {driver!r}: use sqlalchemy's own engine "
            f"with {make}= and clusterdb.sqlalchemy.follow(engine)",
            "driver",
        )
    return driver, url


def create_engine(cluster: str, role: WantedRole = "any", **engine_kwargs: Any) -> Engine:
    """A SQLAlchemy :class:`~sqlalchemy.engine.Engine` over cluster ``cluster`` for ``role``.

    ``engine_kwargs`` go to :func:`sqlalchemy.create_engine` (``pool_size``, ``echo``...),
    except ``creator``, which clusterdb provides. Raises :class:`~clusterdb.ConfigError` for a
    driver without a SQLAlchemy dialect here, or a bad role.
    """
    driver, url = _dialect(cluster, role, engine_kwargs, _URLS, "creator")
    if driver == "sqlite3":  # its default pool for "sqlite://" keeps one connection a thread
        engine_kwargs.setdefault("poolclass", QueuePool)

    watch = PoolWatch(role)

    def creator() -> Any:
        after = _after.get() if role in _READ_ROLES else None
        if after is not None:  # a routing session's read after its commit
            return freshness.open_replica(process.get(cluster), after, {}, role)
        return connect_cluster(process.get(cluster), role, {}, watch.take_destination())

    engine = sqlalchemy.create_engine(url, creator=creator, **engine_kwargs)
    follow(engine, role, watch)
    return engine


def create_async_engine(cluster: str, role: WantedRole = "any", **engine_kwargs: Any) -> Any:
    """A SQLAlchemy :class:`~sqlalchemy.ext.asyncio.AsyncEngine` over cluster ``cluster`` for
    ``role``: its connections come from :func:`clusterdb.connect_async` (psycopg's
    ``AsyncConnection``, or asyncmy for a PyMySQL cluster), and its pool is followed as
    :func:`create_engine`'s is. ``engine_kwargs`` go to SQLAlchemy's ``create_async_engine``,
    except ``async_creator``. Raises :class:`~clusterdb.ConfigError` as :func:`create_engine`."""
    from sqlalchemy.ext.asyncio import create_async_engine as sqlalchemy_async_engine

    from clusterdb.runtime.connect_async import connect_async

    _, url = _dialect(cluster, role, engine_kwargs, _ASYNC_URLS, "async_creator")
    watch = PoolWatch(role)

    async def creator() -> Any:
        after = _after.get() if role in _READ_ROLES else None
        if after is not None:
            return await freshness.open_replica_async(process.get(cluster), after, {}, role)
        return await connect_async(process.get(cluster), role, {}, watch.take_destination())

    engine = sqlalchemy_async_engine(url, async_creator=creator, **engine_kwargs)
    follow(engine.sync_engine, role, watch)
    return engine


def follow(engine: Engine, role: WantedRole = "any", watch: PoolWatch | None = None) -> PoolWatch:
    """Wire clusterdb into the pool events of ``engine`` (whose connections clusterdb makes)
    for ``role``; :func:`create_engine` does this. Returns the :class:`PoolWatch` (a creator
    that passes :meth:`PoolWatch.take_destination` to connect() lets moves choose where the
    replacement goes; without it, connect() draws as usual)."""
    watch = watch or PoolWatch(role)
    _watches[engine] = watch
    event.listen(engine, "connect", watch.on_connect)
    event.listen(engine, "close", watch.on_close)
    event.listen(engine, "detach", watch.on_close)
    event.listen(engine, "checkout", watch.on_checkout)
    event.listen(engine, "checkin", watch.on_checkin)
    event.listen(engine, "handle_error", watch.on_error)
    return watch


def watch_of(engine: Engine) -> PoolWatch | None:
    """The :class:`PoolWatch` of an engine :func:`follow` wired, else None."""
    return _watches.get(engine)


_watches: weakref.WeakKeyDictionary[Engine, PoolWatch] = weakref.WeakKeyDictionary()


class PoolWatch(PoolBalance):
    """One engine's listeners around its :class:`~clusterdb.runtime.pool_balance.PoolBalance`
    (its connections per node, ``moved``, ``refused``)."""

    def on_connect(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tag = pooled.tag_of(dbapi_connection)
        if tag is not None:
            self.opened(tag)

    def on_close(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tag = pooled.tag_of(dbapi_connection)
        if tag is not None:
            self.closed(tag)

    def on_checkout(
        self, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        tag = getattr(dbapi_connection, pooled.ATTRIBUTE, None) or pooled.tag_of(dbapi_connection)
        if tag is not None and not self.keeps(tag):
            ref = pooled.node_of(dbapi_connection)
            raise DisconnectionError(f"clusterdb: {ref} no longer fits role {self.role}")

    def on_checkin(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # The attribute first: tag_of() costs a call, and this runs at every checkin.
        tag = getattr(dbapi_connection, pooled.ATTRIBUTE, None)
        if tag is None and dbapi_connection is not None:
            tag = pooled.tag_of(dbapi_connection)
        if tag is not None and self.checkin(tag) != "keep":
            record.invalidate()  # idle here: no need to wait for its next checkout

    def on_error(self, context: ExceptionContext) -> None:
        exc = context.original_exception
        dbapi_connection = None
        if context.connection is not None and exc is not None:
            try:
                dbapi_connection = context.connection.connection.dbapi_connection
            except Exception:
                return
        if dbapi_connection is None or exc is None:
            return
        kind = pooled.report(dbapi_connection, exc)
        if kind == "lost" or (kind == "read_only" and self.role == "primary"):
            context.is_disconnect = True
        if context.is_disconnect:
            context.invalidate_pool_on_disconnect = False  # the others are judged at checkout


def sessionmaker(
    cluster: str, engine_kwargs: dict[str, Any] | None = None, **kw: Any
) -> orm.sessionmaker[RoutingSession]:
    """A SQLAlchemy ``sessionmaker`` of :class:`RoutingSession` over two engines of
    ``cluster`` (:func:`create_engine` with ``engine_kwargs``): ``role="primary"`` and
    ``role="prefer-replica"``. ``kw`` go to SQLAlchemy's ``sessionmaker``."""
    engines = (
        create_engine(cluster, "primary", **(engine_kwargs or {})),
        create_engine(cluster, "prefer-replica", **(engine_kwargs or {})),
    )
    event.listen(engines[1], "checkout", _checkout_after)
    return orm.sessionmaker(class_=RoutingSession, clusterdb_engines=engines, **kw)


def async_sessionmaker(cluster: str, engine_kwargs: dict[str, Any] | None = None, **kw: Any) -> Any:
    """:func:`sessionmaker` for asyncio: an ``async_sessionmaker`` of ``AsyncSession`` whose
    sync session is a :class:`RoutingSession` over two :func:`create_async_engine` engines."""
    from sqlalchemy.ext.asyncio import async_sessionmaker as sqlalchemy_async_sessionmaker

    primary = create_async_engine(cluster, "primary", **(engine_kwargs or {}))
    replica = create_async_engine(cluster, "prefer-replica", **(engine_kwargs or {}))
    engines = (primary.sync_engine, replica.sync_engine)
    event.listen(engines[1], "checkout", _checkout_after)
    return sqlalchemy_async_sessionmaker(
        sync_session_class=RoutingSession, clusterdb_engines=engines, **kw
    )


class RoutingSession(orm.Session):
    """A Session that picks an engine per statement (SQLAlchemy's ``get_bind`` override):
    flushes, INSERT/UPDATE/DELETE, ``with_for_update()`` and ``text()`` that is not a plain
    read (clusterdb's classifier) go to the primary engine, as do the other reads of a
    transaction that wrote; other reads go to the replica engine. After a commit that wrote,
    reads go to a replica only once a token of the commit is known (:mod:`freshness`), else
    to the primary, for the rest of the session: read-your-writes inside the session."""

    def __init__(self, *args: Any, clusterdb_engines: tuple[Engine, Engine], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.clusterdb_engines = clusterdb_engines
        self.clusterdb_writes = SessionWrites()
        self._clusterdb_primary: Connection | None = None
        dialect = clusterdb_engines[0].dialect.name
        self._clusterdb_dialect: Dialect = "postgresql" if dialect == "postgresql" else "mysql"

    def get_bind(self, mapper: Any = None, clause: Any = None, **kw: Any) -> Engine:
        writes = self._flushing or self._clusterdb_writes_in(clause)
        target = self.clusterdb_writes.target(writes)
        if target == "primary":
            return self.clusterdb_engines[0]
        _after.set(self.clusterdb_writes.token)  # for the replica engine's checkout
        return self.clusterdb_engines[1]

    def _clusterdb_writes_in(self, clause: Any) -> bool:
        if clause is None:
            return False
        if isinstance(clause, UpdateBase) or getattr(clause, "_for_update_arg", None) is not None:
            return True
        if isinstance(clause, TextClause):
            c = classify(clause.text, self._clusterdb_dialect)
            return c.target == "primary" or c.pins_session is not None
        return False


@event.listens_for(RoutingSession, "after_begin")
def _began(session: RoutingSession, transaction: Any, connection: Connection) -> None:
    if connection.engine is session.clusterdb_engines[0]:
        session._clusterdb_primary = connection


@event.listens_for(RoutingSession, "after_commit")
def _committed(session: RoutingSession) -> None:
    writes = session.clusterdb_writes
    writes.ended(committed=True)
    conn, session._clusterdb_primary = session._clusterdb_primary, None
    if writes.unsynced and conn is not None:
        writes.token_taken(_token(conn))


@event.listens_for(RoutingSession, "after_rollback")
def _rolled_back(session: RoutingSession) -> None:
    session.clusterdb_writes.ended(committed=False)
    session._clusterdb_primary = None


def _checkout_after(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    """A routing session's replica connection must have applied its token: checked once per
    connection and token (one round trip); a connection behind is replaced by one opened
    after the token (DisconnectionError: the pool calls the creator, which reads it). Without
    a token, a connection on the primary (a token's fallback) is replaced while a replica
    fits, so that reads go back to replicas."""
    token = _after.get()
    if token is not None and record.info.get("clusterdb_after") == token:
        return
    raw = _driver(dbapi_connection)
    tag = pooled.tag_of(raw)
    if tag is None or not isinstance(tag.cluster, Cluster):
        return
    if token is None:
        replicas = tag.fitness.assessment("replica").fit
        if replicas and tag.node not in replicas:
            raise DisconnectionError("clusterdb: a fallback to the primary, replicas are back")
        return
    if isinstance(dbapi_connection, AdaptedConnection):
        fresh = await_only(freshness.applied_async(tag.cluster, raw, token))
    else:
        fresh = freshness.applied(tag.cluster, raw, token)
    if not fresh:
        raise DisconnectionError("clusterdb: this replica has not applied the session's writes")
    record.info["clusterdb_after"] = token


def _driver(dbapi_connection: Any) -> Any:
    if isinstance(dbapi_connection, AdaptedConnection):
        return dbapi_connection.driver_connection
    return dbapi_connection


def _token(conn: Connection) -> str | None:
    """The token of the commit just made on ``conn`` (in the asyncio engine's greenlet, the
    asyncio driver's connection is awaited)."""
    dbapi = conn.connection.dbapi_connection
    if isinstance(dbapi, AdaptedConnection):
        return await_only(freshness.take_token_async(dbapi.driver_connection))
    return freshness.take_token(_driver(dbapi))
