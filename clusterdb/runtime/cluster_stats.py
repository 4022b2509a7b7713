"""The stats side of :class:`~clusterdb.runtime.cluster.Cluster`: a snapshot of every node's
counters and estimates taken at one moment, and their reset (its fields are declared here and
set by its constructor)."""

from __future__ import annotations

from datetime import UTC, datetime

from clusterdb.core.node_state import NodeRecord
from clusterdb.core.stats import ClusterStats
from clusterdb.drivers import DriverAdapter
from clusterdb.runtime.locked import Locked

__all__ = ["StatsView"]


class StatsView:
    name: str
    adapter: DriverAdapter
    _nodes: dict[str, NodeRecord]
    _locked: Locked
    _connects: int
    _failures: int
    _causal: tuple[int, int]

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
