"""Immutable descriptions of a cluster's nodes: the input of selection.

Selection (:mod:`clusterdb.core.selection`) is a pure function of a :class:`ClusterDescription`;
the runtime builds a fresh description under its lock and decides from it. Nothing here
imports a socket, a thread or a driver. Times are ``time.monotonic()`` seconds; latencies
are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from clusterdb.core.galera import GaleraState

__all__ = [
    "ROLES",
    "STATES",
    "ClusterDescription",
    "NodeDescription",
    "NodeState",
    "Role",
    "WantedRole",
]

NodeState = Literal["unknown", "up", "down"]
"""``unknown``: never proven (no success, no failure yet); ``up``: last attempt or probe
succeeded; ``down``: last attempt or probe failed."""

Role = Literal["unknown", "primary", "replica"]

WantedRole = Literal["any", "primary", "replica", "prefer-replica"]

STATES: tuple[NodeState, ...] = ("unknown", "up", "down")
ROLES: tuple[Role, ...] = ("unknown", "primary", "replica")


@dataclass(frozen=True, slots=True)
class NodeDescription:
    """What is known about one node at one moment."""

    name: str
    address: str = ""
    state: NodeState = "unknown"
    role: Role = "unknown"
    latency: float | None = None
    """Connect latency estimate in seconds (Peak EWMA), None before the first sample."""
    served: int | None = None
    """Connections to this node that connect() has returned, counted as far as trials need
    (see :class:`~clusterdb.core.policies.SelectionPolicy`); None when not counted."""
    lag: float | None = None
    """Replication lag in seconds (replicas), None when unknown."""
    replication_stopped: bool = False
    """A replica that applies no more changes: its lag grows without bound."""
    drained: bool = False
    galera: GaleraState | None = None
    """The node's Galera state, None when it is not a Galera node; only ``synced`` is used."""
    pending: int = 0
    """Connect attempts to this node started and not finished yet."""
    down_since: float | None = None


@dataclass(frozen=True)
class ClusterDescription:
    """All nodes of one cluster at one moment, in registration order."""

    name: str
    nodes: tuple[NodeDescription, ...] = field(default_factory=tuple)
    writer: str | None = None
    """Under ``single_writer``: the one node ``role="primary"`` goes to while it connects
    (:func:`~clusterdb.core.roles.preferred_writer`); None otherwise."""

    @cached_property
    def unknown_roles(self) -> frozenset[str]:
        """Names of the nodes whose role is not known yet."""
        return frozenset(n.name for n in self.nodes if n.role == "unknown")

    def node(self, name: str) -> NodeDescription:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)
