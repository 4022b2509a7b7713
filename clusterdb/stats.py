"""Read-only views of per-node statistics: ``clusterdb.stats.snapshot()`` and ``reset()``.

Snapshots are frozen values (:mod:`clusterdb.core.stats`) taken under the cluster's lock; they
never hold a secret. Datetimes are aware UTC; latencies are milliseconds; lag is seconds.
"""

from __future__ import annotations

from typing import overload

from clusterdb.core.stats import ClusterStats, NodeStats
from clusterdb.runtime import process

__all__ = ["ClusterStats", "NodeStats", "reset", "snapshot"]


@overload
def snapshot(name: str) -> ClusterStats: ...
@overload
def snapshot(name: None = None) -> dict[str, ClusterStats]: ...
def snapshot(name: str | None = None) -> ClusterStats | dict[str, ClusterStats]:
    """Stats of cluster ``name``, or ``{name: ClusterStats}`` for every registered cluster."""
    if name is not None:
        return process.get(name).stats_snapshot()
    return {c.name: c.stats_snapshot() for c in process.all_clusters()}


def reset(name: str | None = None) -> None:
    """Zero the counters and timestamps of ``name`` (every cluster when None).

    Estimates (latency, role, state) are kept: they describe the nodes, not the history.
    """
    clusters = [process.get(name)] if name is not None else process.all_clusters()
    for cluster in clusters:
        cluster.reset_stats()
