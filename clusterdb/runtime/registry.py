"""Registered clusters by name: ``register``, ``unregister``, ``get``.

Writes take the registry lock; ``get`` reads the dict without it (a single dict lookup is
atomic in CPython), so connect() pays no lock here.

Fork safety: a child process inherits every cluster, but not the threads that may have held a
lock at the moment of ``fork()``, nor the parent's attempt threads. An ``after_in_child`` hook
therefore gives the registry and every cluster new locks and zeroes the attempts the child will
never see finish; the monitor starts afresh on first use in the child (see
:mod:`clusterdb.monitor`). Connections opened before the fork belong to the parent: a child
should open its own.
"""

from __future__ import annotations

import logging
import os
import threading

from clusterdb.config import ClusterConfig
from clusterdb.errors import InterfaceError, UnknownClusterError
from clusterdb.runtime.cluster import Cluster

__all__ = ["all_clusters", "get", "names", "register", "unregister"]

log = logging.getLogger("clusterdb")

_clusters: dict[str, Cluster] = {}
_lock = threading.Lock()


def register(config: ClusterConfig) -> Cluster:
    """Register (or replace) the cluster ``config.name``; returns the new runtime cluster.

    A replaced cluster keeps no state: its stats and estimates start from nothing.
    """
    cluster = Cluster(config)  # validates the driver settings before anything is replaced
    with _lock:
        replaced = _clusters.get(config.name)
        _clusters[config.name] = cluster
    if replaced is not None:
        replaced.close()
        log.info("cluster %r: registered again, replacing the previous definition", config.name)
    return cluster


def unregister(name: str) -> None:
    """Forget cluster ``name`` (its open connections are untouched)."""
    with _lock:
        cluster = _clusters.pop(name, None)
        known = tuple(_clusters)
    if cluster is None:
        raise UnknownClusterError(name, known)
    cluster.close()


def get(name: str) -> Cluster:
    """The cluster registered as ``name``; raises UnknownClusterError listing the known ones."""
    cluster = _clusters.get(name)
    if cluster is None:
        raise UnknownClusterError(name, names())
    return cluster


def get_for_driver(name: str, driver: str, module: str) -> Cluster:
    """Cluster ``name``, which must use ``driver`` (for the driver's clusterdb ``module``)."""
    cluster = get(name)
    if cluster.adapter.name != driver:
        raise InterfaceError(
            f"cluster {name!r} uses the {cluster.adapter.name} driver, not {driver}: use "
            f"clusterdb.connect({name!r}) instead of {module}.connect()"
        )
    return cluster


def names() -> tuple[str, ...]:
    with _lock:
        return tuple(_clusters)


def all_clusters() -> tuple[Cluster, ...]:
    with _lock:
        return tuple(_clusters.values())


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for cluster in _clusters.values():
        cluster.after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
