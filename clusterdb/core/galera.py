"""MariaDB Galera: which node may take connections, from what its wsrep status says.

A Galera node answers queries in every state, but only a *synced* one (``wsrep_local_state``
4, ``wsrep_ready`` ON, ``wsrep_cluster_status`` Primary) serves consistent data and commits
writes: a donor or a desynced node lags the group, a joiner is being copied, a minority
partition refuses statements. Every synced node takes writes, so it counts as a primary
(unless it runs ``read_only``). Pure functions of values the probe read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "GALERA_STATES",
    "TOPOLOGIES",
    "GaleraState",
    "Topology",
    "WsrepStatus",
    "galera_state",
    "unusable_reason",
]

Topology = Literal["auto", "replication", "galera"]
"""A cluster's ``topology`` option: ``auto`` treats a node reporting a Galera provider as a
Galera node; ``galera`` expects every node to (one that does not is ``standalone``, and not
used: it would take writes that never reach the others); ``replication`` ignores wsrep."""

GaleraState = Literal[
    "synced", "donor", "desynced", "joining", "joined", "non-primary", "not-ready", "standalone"
]
"""``synced``: usable. ``donor``: sending a state transfer; ``desynced``: ``wsrep_desync``
set (a backup); ``joining``: receiving a state transfer; ``joined``: received, catching up;
``non-primary``: in a minority partition (or not connected); ``not-ready``: any other state
with ``wsrep_ready`` OFF; ``standalone``: no Galera provider, under topology ``galera``."""

TOPOLOGIES: tuple[Topology, ...] = get_args(Topology)
GALERA_STATES: tuple[GaleraState, ...] = get_args(GaleraState)

# wsrep_local_state values.
_JOINING, _DONOR, _JOINED, _SYNCED = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class WsrepStatus:
    """A Galera node's status as one probe read it."""

    local_state: int
    """``wsrep_local_state``: 1 joining, 2 donor/desynced, 3 joined, 4 synced (0: not in
    a primary component)."""
    ready: bool
    """``wsrep_ready``: the node accepts application statements."""
    cluster_status: str
    """``wsrep_cluster_status``: ``Primary``, ``non-Primary`` or ``Disconnected``."""
    desync: bool = False
    """``@@wsrep_desync``: desynced on request (tells a desynced node from a donor)."""


def galera_state(status: WsrepStatus | None, topology: Topology = "auto") -> GaleraState | None:
    """The Galera state of a node whose probe read ``status`` (None: the server reported no
    Galera provider), or None when the node is not a Galera node for ``topology``."""
    if topology == "replication":
        return None
    if status is None:
        return "standalone" if topology == "galera" else None
    if status.cluster_status != "Primary":
        return "non-primary"
    if status.local_state == _SYNCED:
        return "synced" if status.ready else "not-ready"
    if status.local_state == _DONOR:
        return "desynced" if status.desync else "donor"
    if status.local_state == _JOINING:
        return "joining"
    if status.local_state == _JOINED:
        return "joined"
    return "not-ready"


def unusable_reason(state: GaleraState | None) -> str | None:
    """Why a node in Galera ``state`` gets no connection, or None when it may (synced, or
    not a Galera node)."""
    if state is None or state == "synced":
        return None
    return f"galera {state} (only synced nodes are used)"
