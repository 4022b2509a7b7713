"""A runtime cluster's counters, mixed into :class:`~clusterdb.runtime.cluster.Cluster`:
the stats snapshot and reset, what connect(after=token) learned and counted, and when the
process's own connects last saw a node (the monitor skips a probe they made needless).

Every read and write of a counter is under the cluster's lock (``_locked`` folds queued
returns first, so a snapshot counts every connect that has returned).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime

from clusterdb.config import ClusterConfig
from clusterdb.core.causal_rules import Position
from clusterdb.core.node_state import NodeRecord
from clusterdb.core.stats import ClusterStats
from clusterdb.drivers import DriverAdapter
from clusterdb.runtime.locked import Locked

__all__ = ["Counts"]


class Counts:
    """The counters of :class:`~clusterdb.runtime.cluster.Cluster` (its fields are declared
    here and set by its constructor)."""

    name: str
    config: ClusterConfig
    adapter: DriverAdapter
    _lock: threading.Lock
    _locked: Locked
    _nodes: dict[str, NodeRecord]
    _connects: int
    _failures: int
    _causal: tuple[int, int]

    def observed_at(self, node: str) -> float | None:
        """When this process's connects last saw ``node`` as a probe would (monotonic), or
        None (:meth:`NodeRecord.observation`; also for a node removed meanwhile). No lock: a
        stale answer only means a probe that could have been skipped runs."""
        n = self._nodes.get(node)
        return None if n is None else n.observation(self.config.options.max_lag)

    def replica_positions(self) -> dict[str, Position | None]:
        """Each replica's applied position as last seen (a probe, a connect's question)."""
        with self._lock:
            return {n.name: n.applied for n in self._nodes.values() if n.role == "replica"}

    def record_causal(self, waited: bool, fell_back: bool, seen: Mapping[str, Position]) -> None:
        """Count a connect(after=token) that ``waited`` for a replica, that ``fell_back``;
        ``seen``: replicas' applied positions it read (the later position is kept)."""
        with self._lock:
            self._causal = (self._causal[0] + waited, self._causal[1] + fell_back)
            for node, position in seen.items():
                self._nodes[node].learn_applied(position)

    def stats_snapshot(self) -> ClusterStats:
        """Every node's counters and estimates, taken at one moment."""
        with self._locked:
            nodes = tuple(n.snapshot() for n in self._nodes.values())
            connects, failures, causal = self._connects, self._failures, self._causal
        now = datetime.now(UTC)
        return ClusterStats(self.name, self.adapter.name, nodes, connects, failures, now, *causal)

    def reset_stats(self) -> None:
        """Zero counters and timestamps; keep estimates, state, role and pending attempts
        (connects made before the reset are folded first, and not counted after it)."""
        with self._locked:
            for n in self._nodes.values():
                n.reset_counters()
            self._connects = self._failures = 0
            self._causal = (0, 0)
