"""Everything clusterdb keeps per process: the registered clusters, the worker pool, the
monitor, and the one fork hook and one exit hook that look after them.

``get`` reads the registry without its lock (one dict lookup) and ``monitor()`` is a global
read, so connect() pays for neither; writes take the lock.

In a forked child the parent's threads do not exist and its locks may be held: the fork hook
gives the registry a new lock, every cluster its own reset, then a new worker pool, then a new
monitor, in that order. Connections opened before the fork belong to the parent.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from clusterdb.config import ClusterConfig
from clusterdb.drivers import get_adapter
from clusterdb.drivers.bind import bind_nodes
from clusterdb.drivers.fork_gate import LIBPQ
from clusterdb.errors import InterfaceError, UnknownClusterError
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.membership import MembershipChange
from clusterdb.runtime.monitor import Monitor
from clusterdb.runtime.workers import WorkerPool

__all__ = [
    "all_clusters",
    "close",
    "get",
    "get_for_driver",
    "monitor",
    "names",
    "pool",
    "probe_all",
    "register",
    "reload",
    "spawn",
    "unregister",
]

log = logging.getLogger("clusterdb")

_clusters: dict[str, Cluster] = {}
_lock = threading.Lock()
_pool = WorkerPool()


def spawn(target: Callable[..., Any], /, *args: Any, name: str) -> None:
    """Run ``target(*args)`` on the process's worker pool, on a thread named ``name``."""
    _pool.spawn(target, *args, name=name)


_monitor = Monitor(spawn)


def monitor() -> Monitor:
    """The process's monitor; its thread starts when it first watches a cluster."""
    return _monitor


def pool() -> WorkerPool:
    """The process's worker pool (tests wait on it)."""
    return _pool


# -- the registry --


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


def reload(configs: tuple[ClusterConfig, ...]) -> dict[str, MembershipChange]:
    """Apply ``configs``: a cluster registered under the same name and driver takes its
    config in place (:meth:`Cluster.reconfigure`: kept nodes keep their state and stats);
    any other is registered anew. Every config is bound to its driver first, so a setting
    the driver refuses changes no cluster. Returns each cluster's node-list change."""
    for config in configs:
        bind_nodes(config, get_adapter(config.driver))
    changes: dict[str, MembershipChange] = {}
    for config in configs:
        current = _clusters.get(config.name)
        if current is None or current.retired or current.config.driver != config.driver:
            register(config)
            changes[config.name] = MembershipChange(added=tuple(e.name for e in config.nodes))
        else:
            changes[config.name] = current.reconfigure(config)
    return changes


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


# -- background work --


def probe_all(cluster: Cluster, timeout: float) -> None:
    """Probe every node of ``cluster`` now, in parallel; wait up to ``timeout`` s for all of
    them. A probe still running then records its outcome when it ends."""
    done: queue.SimpleQueue[str] = queue.SimpleQueue()

    def probe_one(node: str) -> None:
        try:
            cluster.probe(node)  # records its own outcome
        finally:
            done.put(node)

    deadline = time.monotonic() + timeout
    for node in cluster.node_names:
        spawn(probe_one, node, name=f"clusterdb-probe-{cluster.name}-{node}")
    for _ in cluster.node_names:
        try:
            done.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return


def close(timeout: float = 1.0) -> bool:
    """Stop the monitor and end every clusterdb thread (probes and connect attempts still in
    flight, idle workers), waiting up to ``timeout`` s; True when none is left. Clusters stay
    registered; connect() and the monitor start again on use."""
    global _monitor, _pool
    deadline = time.monotonic() + timeout
    with _lock:
        stopping = _monitor
        _monitor = Monitor(spawn)
    stopping.stop(timeout)  # before the pool: its last probes go to the pool being closed
    with _lock:
        closing = _pool
        _pool = WorkerPool()
    return closing.close(max(0.0, deadline - time.monotonic()))


def _after_fork_in_child() -> None:
    global _lock, _monitor, _pool
    LIBPQ.reset()
    _lock = threading.Lock()
    for cluster in _clusters.values():
        cluster.after_fork_in_child()
    _pool = WorkerPool()
    _monitor = Monitor(spawn)


# Before a fork, no libpq connect step under way (clusterdb.drivers.fork_gate).
os.register_at_fork(
    before=LIBPQ.close, after_in_parent=LIBPQ.reopen, after_in_child=_after_fork_in_child
)
# Bounded: a node hung mid-probe must not hold the process (at most ~1 s at exit).
atexit.register(close, 1.0)
