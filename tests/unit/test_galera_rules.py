"""The Galera rules as tables: status -> state -> usable (clusterdb.core.galera), and the
single writer (clusterdb.core.roles)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from clusterdb.core.description import ClusterDescription, NodeDescription
from clusterdb.core.galera import (
    GALERA_STATES,
    TOPOLOGIES,
    GaleraState,
    Topology,
    WsrepStatus,
    galera_state,
    unusable_reason,
)
from clusterdb.core.roles import preferred_writer
from clusterdb.core.selection import plan

SYNCED = WsrepStatus(4, True, "Primary")

# (status, topology, expected state)
STATES: list[tuple[WsrepStatus | None, Topology, GaleraState | None]] = [
    (SYNCED, "auto", "synced"),
    (SYNCED, "galera", "synced"),
    (SYNCED, "replication", None),
    (WsrepStatus(4, False, "Primary"), "auto", "not-ready"),
    (WsrepStatus(2, True, "Primary"), "auto", "donor"),
    (WsrepStatus(2, True, "Primary", desync=True), "auto", "desynced"),
    (WsrepStatus(1, False, "Primary"), "auto", "joining"),
    (WsrepStatus(3, True, "Primary"), "auto", "joined"),
    # An isolated node: wsrep_local_state 0 ("Initialized"), not ready, non-Primary.
    (WsrepStatus(0, False, "non-Primary"), "auto", "non-primary"),
    (WsrepStatus(4, True, "non-Primary"), "galera", "non-primary"),
    (WsrepStatus(0, False, "Disconnected"), "auto", "non-primary"),
    (WsrepStatus(0, True, "Primary"), "auto", "not-ready"),
    (None, "auto", None),
    (None, "replication", None),
    (None, "galera", "standalone"),
]


@pytest.mark.parametrize(("status", "topology", "expected"), STATES)
def test_state_from_status(
    status: WsrepStatus | None, topology: Topology, expected: GaleraState | None
) -> None:
    assert galera_state(status, topology) == expected


@pytest.mark.parametrize("state", [*GALERA_STATES, None])
def test_only_synced_and_non_galera_nodes_are_usable(state: GaleraState | None) -> None:
    reason = unusable_reason(state)
    if state in ("synced", None):
        assert reason is None
    else:
        assert reason is not None and reason.startswith(f"galera {state} ")


def test_every_state_is_reachable_and_the_topologies_are_three() -> None:
    reached = {s for _, _, s in STATES}
    assert reached == {*GALERA_STATES, None}
    assert TOPOLOGIES == ("auto", "replication", "galera")


def nd(name: str, **fields: Any) -> NodeDescription:
    return NodeDescription(name, **{"state": "up", "role": "primary", **fields})


# (nodes, expected writer)
WRITERS: list[tuple[list[NodeDescription], str | None]] = [
    ([nd("a"), nd("b")], "a"),
    ([nd("a", state="unknown", role="unknown"), nd("b")], "a"),  # before any probe
    ([nd("a", state="down"), nd("b")], "b"),
    ([nd("a", drained=True), nd("b")], "b"),
    ([nd("a", role="replica"), nd("b")], "b"),
    ([nd("a", galera="donor"), nd("b", galera="joined"), nd("c", galera="synced")], "c"),
    ([nd("a", galera="synced"), nd("b", galera="synced")], "a"),
    ([nd("a", state="down"), nd("b", galera="non-primary")], None),
    ([], None),
]


@pytest.mark.parametrize(("nodes", "expected"), WRITERS)
def test_preferred_writer_is_the_first_usable_node(
    nodes: list[NodeDescription], expected: str | None
) -> None:
    assert preferred_writer(nodes) == expected


def test_the_writer_is_not_hedged_and_not_raced() -> None:
    desc = ClusterDescription("c", (nd("a", latency=0.05), nd("b", latency=0.001)), writer="a")
    chosen = plan(desc, "primary", rng=random.Random(0))
    assert chosen.nodes == ("a", "b") and not chosen.race
    assert chosen.hedge_delays == (math.inf, math.inf)
    assert plan(desc, "any", rng=random.Random(0)).nodes[0] == "b"
