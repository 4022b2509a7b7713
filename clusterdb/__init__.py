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
(``connect_timeout``) bounds it.
"""

from __future__ import annotations

import logging
from typing import Any

from clusterdb import stats
from clusterdb.config import cluster_from_kwargs, load_file
from clusterdb.core.description import WantedRole
from clusterdb.errors import (
    AllNodesFailed,
    ConfigError,
    DatabaseError,
    Error,
    InterfaceError,
    NoSuitableNode,
    OperationalError,
    UnknownClusterError,
)
from clusterdb.runtime import process
from clusterdb.runtime.connect import connect as connect_cluster

__all__ = [
    "AllNodesFailed",
    "ConfigError",
    "DatabaseError",
    "Error",
    "InterfaceError",
    "NoSuitableNode",
    "OperationalError",
    "UnknownClusterError",
    "__version__",
    "apilevel",
    "close",
    "clusters",
    "connect",
    "drain",
    "load_config",
    "paramstyle",
    "probe",
    "register",
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

    Returns the names registered. The whole file is validated before any cluster is
    registered.
    """
    configs = load_file(path)
    for config in configs:
        process.register(config)
    return tuple(c.name for c in configs)


def connect(name: str, *, role: WantedRole = "any", **overrides: Any) -> Any:
    """A connection to a node of cluster ``name``: the driver's own connection object.

    ``role``: ``"any"``, ``"primary"``, ``"replica"`` or ``"prefer-replica"``. ``overrides``
    go to the driver's ``connect()``, except ``connect_timeout``: the overall deadline in
    seconds (sub-second values allowed). Raises :class:`AllNodesFailed` (also the driver's
    ``OperationalError``) when no node could be reached, :class:`NoSuitableNode` when none
    fits ``role``.
    """
    return connect_cluster(process.get(name), role, overrides)


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
