"""Per-node statistics as frozen values (what ``clusterdb.stats.snapshot()`` returns).

Snapshots are frozen values taken under the cluster's lock; they never hold a secret.
Datetimes are aware UTC; latencies are milliseconds; lag is seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["ClusterStats", "NodeStats"]


@dataclass(frozen=True)
class NodeStats:
    """One node's counters, timestamps, estimates and state."""

    name: str
    address: str
    state: str
    role: str
    connects: int
    """Successful connect attempts (winners, late losers and role mismatches alike)."""
    connect_errors: int
    discarded: int
    """Successful attempts whose connection was closed unused (lost the race, wrong role)."""
    pending: int
    """Attempts started and not finished yet."""
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    latency_ms: float | None
    latency_min_ms: float | None
    rtt_ms: float | None
    lag_s: float | None
    state_changes: int
    last_state_change_at: datetime | None
    down_since: datetime | None
    drained: bool
    probes: int
    probe_errors: int
    replication_stopped: bool = False
    """A replica that applies no more changes (MariaDB's SQL thread stopped); its ``lag_s``
    is None but growing. Such a replica is skipped under ``max_lag``."""
    galera: str | None = None
    """A Galera node's state (:data:`~clusterdb.core.galera.GALERA_STATES`: ``synced``,
    ``donor``, ``desynced``, ``joining``, ``joined``, ``non-primary``...), None for any other
    node. Only a synced node gets connections."""
    applied: str | None = None
    """A replica's applied log position at its last probe (PostgreSQL replay LSN ``X/Y``,
    MariaDB GTID position), as the server prints it; None on a primary or before a probe."""

    @property
    def attempts(self) -> int:
        """Every connect attempt made: finished ones plus those still running."""
        return self.connects + self.connect_errors + self.pending

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601 strings)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        return out


@dataclass(frozen=True)
class ClusterStats:
    """One cluster's nodes plus connect() outcomes."""

    name: str
    driver: str
    nodes: tuple[NodeStats, ...]
    connects: int
    """connect() calls that returned a connection."""
    failures: int
    """connect() calls that raised."""
    taken_at: datetime
    causal_waits: int = 0
    """connect(after=token) calls that waited (up to ``causal_wait``) for a replica to apply
    the token."""
    causal_fallbacks: int = 0
    """connect(after=token) calls no replica could serve in time: served by the primary
    (``prefer-replica``, ``any``) or refused (``replica``)."""

    def node(self, name: str) -> NodeStats:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO 8601 strings)."""
        return {
            "name": self.name,
            "driver": self.driver,
            "connects": self.connects,
            "failures": self.failures,
            "causal_waits": self.causal_waits,
            "causal_fallbacks": self.causal_fallbacks,
            "taken_at": self.taken_at.isoformat(),
            "nodes": [n.as_dict() for n in self.nodes],
        }
