"""clusterdb: a PEP 249 meta-driver for replicated PostgreSQL / MariaDB clusters.

::

    import clusterdb
    clusterdb.register("main", driver="psycopg",
                       nodes=[{"name": "pg1", "host": "10.0.0.1", "port": 5432},
                              "host=10.0.0.2 port=5432"],
                       dbname="app", user="app", password="...")
    conn = clusterdb.connect("main")      # the driver's own connection, from the node that won
    clusterdb.stats.snapshot("main")

``connect()`` races the nodes while nothing is known about them, then tries the best node
first and hedges to the next when it is slow to answer; one overall deadline
(``connect_timeout``) bounds it. ``await connect_async()`` does the same on the caller's
event loop and returns the asyncio driver's connection.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from clusterdb import stats
from clusterdb.config import cluster_from_kwargs, load_file
from clusterdb.core.description import WantedRole
from clusterdb.core.membership import MembershipChange
from clusterdb.core.routing import ConnectRole
from clusterdb.errors import (
    AllNodesFailed,
    CausalTokenError,
    ConfigError,
    DatabaseError,
    Error,
    InterfaceError,
    NoSuitableNode,
    OperationalError,
    UnknownClusterError,
)
from clusterdb.runtime import pooled, process
from clusterdb.runtime.causal import connect_after, token_of
from clusterdb.runtime.connect import connect as _connect
from clusterdb.runtime.pooled import NodeRef
from clusterdb.runtime.routed import RoutedConnection, RoutedCursor

__all__ = [
    "AllNodesFailed",
    "CausalTokenError",
    "ConfigError",
    "DatabaseError",
    "Error",
    "InterfaceError",
    "MembershipChange",
    "NoSuitableNode",
    "NodeRef",
    "OperationalError",
    "RoutedConnection",
    "RoutedCursor",
    "UnknownClusterError",
    "__version__",
    "add_node",
    "apilevel",
    "causal_token",
    "causal_token_async",
    "close",
    "clusters",
    "connect",
    "connect_async",
    "drain",
    "fits",
    "load_config",
    "node_of",
    "paramstyle",
    "probe",
    "register",
    "reload",
    "remove_node",
    "report_error",
    "stats",
    "threadsafety",
    "undrain",
    "unregister",
]

__version__ = "0.1.0"

# A library logs, the application decides where to: no "No handlers" fallback to stderr.
logging.getLogger("clusterdb").addHandler(logging.NullHandler())

apilevel = "2.0"
threadsafety = 1
"""Threads may share the module, not connections (PyMySQL's level; psycopg allows more)."""
paramstyle = "pyformat"


def register(name: str, driver: Any, nodes: Any, **kwargs: Any) -> None:
    """Register cluster ``name`` (replacing any cluster of that name).

    ``driver``: ``"psycopg"``, ``"pymysql"`` or a PEP 249 module (``sqlite3``). ``nodes``: a
    list of mappings (``name``, ``host``, ``port``, driver keys) or DSN strings. clusterdb's
    own options (``connect_timeout``, ``max_lag``, ``heartbeat``...) are taken from
    ``kwargs``; the rest goes to the driver's ``connect()``. Raises ConfigError naming the
    key at fault.
    """
    process.register(cluster_from_kwargs(name, driver, nodes, kwargs))


def unregister(name: str) -> None:
    """Forget cluster ``name``; connections already open are left alone."""
    process.unregister(name)


def clusters() -> tuple[str, ...]:
    """Names of the registered clusters, in registration order."""
    return process.names()


def load_config(path: str | None = None) -> tuple[str, ...]:
    """Register every ``[clusters.NAME]`` of a TOML file (default: ``$CLUSTERDB_CONFIG``).

    Returns the names registered. The whole file is validated (and bound to the drivers)
    before any cluster changes. A cluster already registered with the same driver is updated
    in place, as :func:`reload` does: its unchanged nodes keep their state and stats.
    """
    return tuple(reload(path))


def reload(path: str | None = None) -> dict[str, MembershipChange]:
    """Read a TOML file again (default: ``$CLUSTERDB_CONFIG``) and apply it to the running
    process: each cluster already registered with the same driver takes its new options at
    once and its new node list as :func:`add_node` / :func:`remove_node` would (nodes of the
    same name and settings keep their state, stats and latency estimates; new ones are
    added; missing ones retired; a node whose settings changed starts afresh); other clusters
    are registered. Connections already open are left alone. Clusters absent from the file
    are left registered. Returns each cluster's change (``added``, ``removed``, ``changed``).
    """
    return process.reload(load_file(path))


def add_node(cluster: str, spec: Any) -> str:
    """Add a node to registered ``cluster`` while it serves; returns the node's name.

    ``spec``: one node as register()'s ``nodes=`` takes it (a mapping of ``name``, ``host``,
    ``port``, ``dsn``, ``password_env``, ``password_file``, driver keywords; or a DSN string),
    with the cluster's driver keywords as defaults. The monitor probes it at once; connect()
    may choose it as soon as this returns. Raises ConfigError for a bad spec or a name the
    cluster already has, UnknownClusterError for an unknown cluster.
    """
    return process.get(cluster).add_node(spec)


def remove_node(cluster: str, name: str) -> None:
    """Retire node ``name`` of ``cluster``: no connect() planned after this returns tries
    it, the monitor stops probing it, its stats leave the snapshot. Connections already open
    to it are left alone (:func:`fits` is False for them, so pools replace them). Raises
    InterfaceError for an unknown node or the cluster's last node.
    """
    process.get(cluster).remove_node(name)


def connect(
    name: str, *, role: ConnectRole = "any", after: str | None = None, **overrides: Any
) -> Any:
    """A connection to a node of cluster ``name``: the driver's own connection object.

    ``role``: ``"any"``, ``"primary"``, ``"replica"`` or ``"prefer-replica"``; ``"auto"``
    returns a :class:`RoutedConnection` instead, which routes each statement (reads to a
    replica that has applied this connection's writes, the rest to the primary). ``overrides``
    go to the driver's ``connect()``, except ``connect_timeout``: the overall deadline in
    seconds (sub-second values allowed). Raises :class:`AllNodesFailed` (also the driver's
    ``OperationalError``) when no node could be reached, :class:`NoSuitableNode` when none
    fits ``role``.

    ``after``: a token from :func:`causal_token`: only a node that has applied it is returned
    (read-your-writes). A replica the monitor or one round trip finds past it; else one that
    gets there within the cluster's ``causal_wait``; else the primary for ``prefer-replica``
    and ``any``, :class:`NoSuitableNode` naming the token for ``replica``. A malformed token
    or one of another cluster raises :class:`CausalTokenError`.
    """
    cluster = process.get(name)
    if role == "auto":
        return RoutedConnection(cluster, overrides, after)
    if after is None:  # what connect_after() would do, one call sooner
        return _connect(cluster, role, overrides)
    return connect_after(cluster, role, overrides, after)


def causal_token(conn: Any) -> str:
    """Where the cluster's log stood after ``conn``'s last commit, as a token for
    ``connect(after=...)``: plain text (cookie- and header-safe), one round trip (none on
    PyMySQL + MariaDB once the session wrote: the OK packets reported the session's GTID).

    ``conn``: a (sync) connection clusterdb returned, on a primary (its writes) or a replica
    (what it has applied). For asyncio connections use :func:`causal_token_async`. Raises
    InterfaceError for any other object or a driver without tokens.
    """
    return token_of(conn)


async def causal_token_async(conn: Any) -> str:
    """:func:`causal_token` for a connection :func:`connect_async` returned."""
    from clusterdb.runtime.causal_async import token_of_async

    return await token_of_async(conn)


async def connect_async(
    name: str, *, role: ConnectRole = "any", after: str | None = None, **overrides: Any
) -> Any:
    """:func:`connect` on the running event loop: attempts are tasks, hedge delays are loop
    timers, and the loop is never blocked. Returns the asyncio driver's own connection:
    ``psycopg.AsyncConnection`` for psycopg clusters, an asyncmy connection for PyMySQL ones
    (one registration serves both functions, and they share the nodes' state and stats).

    Same arguments (``after=`` too) and errors as :func:`connect` (bound to the asyncio driver's
    ``OperationalError``). Cancelling it (``asyncio.wait_for``...) cancels its attempts and
    closes whatever they opened.
    """
    cluster = process.get(name)
    if role == "auto":
        from clusterdb.runtime.routed_async import AsyncRoutedConnection

        return AsyncRoutedConnection(cluster, overrides, after)
    if after is None:  # what connect_after_async() would do, one coroutine sooner
        return await (_connect_async or _import_connect_async())(cluster, role, overrides)
    from clusterdb.runtime.causal_async import connect_after_async

    return await connect_after_async(cluster, role, overrides, after)


# runtime.connect_async.connect_async, imported by the first connect_async() (asyncio with it):
# kept here, as an import statement costs more than half a microsecond on every call.
_connect_async: Callable[..., Awaitable[Any]] | None = None


def _import_connect_async() -> Callable[..., Awaitable[Any]]:
    global _connect_async
    from clusterdb.runtime.connect_async import connect_async as imported

    _connect_async = imported
    return imported


def close(timeout: float = 1.0) -> bool:
    """Stop clusterdb's background work; also done at interpreter exit.

    Stops the monitor and waits up to ``timeout`` seconds for probes and abandoned connect
    attempts still in flight and for the idle worker threads to end; True when no clusterdb
    thread is left. Clusters stay registered and connect() keeps working; the monitor starts
    again on use.
    """
    return process.close(timeout)


def probe(name: str, timeout: float | None = None) -> stats.ClusterStats:
    """Probe every node of cluster ``name`` now, in parallel (connect, role, lag), and return
    the stats afterwards. Waits at most ``timeout`` seconds (default: the cluster's
    ``connect_timeout`` plus one); a probe still running then is recorded when it ends.
    """
    cluster = process.get(name)
    process.probe_all(
        cluster, cluster.options.connect_timeout + 1.0 if timeout is None else timeout
    )
    return cluster.stats_snapshot()


def drain(cluster: str, node: str) -> None:
    """Give ``node`` of ``cluster`` no new connections until :func:`undrain`."""
    process.get(cluster).drain(node)


def undrain(cluster: str, node: str) -> None:
    """Put a drained node back into rotation."""
    process.get(cluster).undrain(node)


def node_of(conn: Any) -> NodeRef | None:
    """The cluster and node of a connection clusterdb returned (``NodeRef(cluster, node)``),
    or None for any other object (also for a connection of a driver whose objects take
    neither an attribute nor a weak reference)."""
    return pooled.node_of(conn)


def fits(conn: Any, role: WantedRole = "any") -> bool:
    """Would clusterdb hand ``conn`` out for ``role`` now? No I/O (about a microsecond).

    False when its node is down, drained, no longer of ``role``, a replica lagging more than
    ``max_lag``, far slower than the fastest node that fits, removed or changed since (or its
    cluster was registered again since); True for a connection clusterdb did not make. For
    pools: check it at checkout and open a new connection through :func:`connect` when it
    does not fit.
    """
    return pooled.fits(conn, role)


def report_error(conn: Any, exc: BaseException) -> bool:
    """Tell clusterdb about an error ``exc`` raised on ``conn``; True: throw ``conn`` away.

    A read-only error (PostgreSQL SQLSTATE 25006 on a standby; MariaDB/MySQL 1290, 1836) marks
    the node as not primary; a lost connection makes it suspect. Either has the monitor
    re-read every node's role at once, so a promoted primary is found within a probe's round
    trip. Other errors, and connections clusterdb did not make, change nothing (False).
    """
    return pooled.report(conn, exc) is not None


def __getattr__(name: str) -> Any:
    """``AsyncRoutedConnection`` and ``AsyncRoutedCursor``, imported on first use (asyncio)."""
    if name in ("AsyncRoutedConnection", "AsyncRoutedCursor"):
        from clusterdb.runtime import routed_async

        return getattr(routed_async, name)
    raise AttributeError(f"module 'clusterdb' has no attribute {name!r}")
