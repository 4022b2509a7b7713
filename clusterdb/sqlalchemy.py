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
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

from clusterdb.core.description import WantedRole
from clusterdb.core.rebalance import Rebalancer
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.errors import ConfigError
from clusterdb.runtime import pooled, process
from clusterdb.runtime.connect import connect as connect_cluster

__all__ = ["PoolWatch", "create_async_engine", "create_engine", "follow", "watch_of"]

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


class PoolWatch:
    """One engine's listeners, and what they know of the pool: its connections per node."""

    def __init__(self, role: WantedRole, clock: Any = time.monotonic) -> None:
        self.role: WantedRole = role
        self.moved = 0
        """Connections closed at checkin to move them to another node."""
        self.refused = 0
        """Connections refused at checkout (their node no longer fits)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._balance = Rebalancer(pooled.DEFAULT_POLICY)
        self._destination: str | None = None

    def take_destination(self) -> str | None:
        """The node the last move chose for its replacement (once), else None."""
        with self._lock:
            node, self._destination = self._destination, None
        return node

    @property
    def counts(self) -> dict[str, int]:
        """Node -> the pool's open connections on it."""
        with self._lock:
            return dict(self._balance.counts)

    def on_connect(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tag = pooled.tag_of(dbapi_connection)
        if tag is not None:
            with self._lock:
                self._balance.opened(tag.node)

    def on_close(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        tag = pooled.tag_of(dbapi_connection)
        if tag is not None:
            with self._lock:
                self._balance.closed(tag.node)

    def on_checkout(
        self, dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        tag = getattr(dbapi_connection, pooled.ATTRIBUTE, None) or pooled.tag_of(dbapi_connection)
        if tag is None:
            return
        if tag.node not in tag.fitness.assessment(self.role).fit or tag.cluster.retired:
            self.refused += 1
            ref = pooled.node_of(dbapi_connection)
            raise DisconnectionError(f"clusterdb: {ref} no longer fits role {self.role}")

    def on_checkin(self, dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # The attribute first: tag_of() costs a call, and this runs at every checkin.
        tag = getattr(dbapi_connection, pooled.ATTRIBUTE, None)
        if tag is None and (
            dbapi_connection is None or (tag := pooled.tag_of(dbapi_connection)) is None
        ):
            return
        now = self._clock()
        found = tag.fitness.assessment(self.role, now)
        if tag.node not in found.fit or tag.cluster.retired:
            record.invalidate()  # idle here: no need to wait for its next checkout
            return
        if self._balance.settled(found):  # read without the lock: at worst a move waits
            return
        with self._lock:
            destination = self._balance.move_to(tag.node, found, now)
            if destination is not None:
                self._destination = destination
        if destination is not None:
            self.moved += 1
            record.invalidate()

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
