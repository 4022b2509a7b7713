"""What a node's transition reports for the log: values made under the cluster's lock and
logged after it (:mod:`clusterdb.runtime.log` words them)."""

from __future__ import annotations

from typing import NamedTuple

from clusterdb.core.description import NodeState, Role

__all__ = ["DrainChanged", "Event", "ReplicationChanged", "RoleChanged", "StateChanged"]


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


Event = StateChanged | RoleChanged | ReplicationChanged | DrainChanged
