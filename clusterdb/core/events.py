"""What a node's transition reports for the log: values made under the cluster's lock and
logged after it (:mod:`clusterdb.runtime.log` words them)."""

from __future__ import annotations

from typing import NamedTuple

from clusterdb.core.description import NodeState, Role
from clusterdb.core.galera import GaleraState

__all__ = [
    "DrainChanged",
    "Event",
    "GaleraChanged",
    "ReplicationChanged",
    "RoleChanged",
    "StateChanged",
]


class StateChanged(NamedTuple):
    """``node`` (at ``address``) went from ``old`` to ``new``; ``detail``: the error that took
    it down, or how long it was down."""

    node: str
    old: NodeState
    new: NodeState
    address: str
    detail: str


class RoleChanged(NamedTuple):
    """``node`` was seen as ``new`` (a promotion, a demotion, or its first known role)."""

    node: str
    old: Role
    new: Role


class ReplicationChanged(NamedTuple):
    """``node``'s replication ``stopped`` (it applies no more changes) or runs again."""

    node: str
    stopped: bool


class DrainChanged(NamedTuple):
    """An operator ``drained`` ``node`` (or put it back into rotation)."""

    node: str
    drained: bool


class GaleraChanged(NamedTuple):
    """``node``'s Galera state went from ``old`` to ``new`` (None: not a Galera node)."""

    node: str
    old: GaleraState | None
    new: GaleraState | None


Event = StateChanged | RoleChanged | ReplicationChanged | DrainChanged | GaleraChanged
