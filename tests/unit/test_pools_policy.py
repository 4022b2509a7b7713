"""Pools' pure policy (issue 13): what a pooled connection may stay on and which share each
node gets (tests/unit/scenarios/pools/assess.json), when a checked-in connection is moved
(rebalance.json), and how requests to re-read the roles are spaced."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdb.core.description import ClusterDescription, NodeDescription
from clusterdb.core.rebalance import Assessment, RebalancePolicy, Rebalancer, assess, first_on
from clusterdb.core.recheck import RecheckGate, RecheckPolicy
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.core.schedule import ProbeSchedule
from clusterdb.core.selection import Plan

SCENARIOS = Path(__file__).parent / "scenarios" / "pools"


def _cases(name: str) -> list[Any]:
    cases = json.loads((SCENARIOS / name).read_text())
    return [pytest.param(case, id=f"{name}[{i}]") for i, case in enumerate(cases)]


@pytest.mark.parametrize("case", _cases("assess.json"))
def test_assess_scenario(case: dict[str, Any]) -> None:
    desc = ClusterDescription("c", tuple(NodeDescription(**n) for n in case["nodes"]))
    found = assess(desc, case["wanted"], max_lag=case.get("max_lag"))
    assert sorted(found.fit) == sorted(case["expect"]["fit"]), case["description"]
    expected = case["expect"]["shares"]
    assert set(found.shares) == set(expected), case["description"]
    for node, share in expected.items():
        assert found.shares[node] == pytest.approx(share, abs=1e-3), case["description"]


@pytest.mark.parametrize("case", _cases("rebalance.json"))
def test_rebalance_scenario(case: dict[str, Any]) -> None:
    balance = Rebalancer()
    for node, count in case["counts"].items():
        for _ in range(count):
            balance.opened(node)
    shares = case["shares"]
    found = Assessment(frozenset(shares) | frozenset(case["counts"]), shares)
    assert balance.move_to(case["node"], found, 100.0) == case["expect"], case["description"]


def test_moves_are_spaced_and_counts_follow_opens_and_closes() -> None:
    balance = Rebalancer(RebalancePolicy(spacing=0.25))
    for _ in range(6):
        balance.opened("b")
    shares = Assessment(frozenset({"a", "b"}), {"a": 0.5, "b": 0.5})
    assert balance.move_to("b", shares, 10.0)
    balance.closed("b")
    assert not balance.move_to("b", shares, 10.2)  # too soon after the last move
    assert balance.move_to("b", shares, 10.25)
    balance.closed("b")
    balance.opened("a")
    balance.opened("a")
    assert dict(balance.counts) == {"a": 2, "b": 4}
    for _ in range(4):
        balance.closed("b")
    balance.closed("b")  # one close too many leaves no negative count
    assert dict(balance.counts) == {"a": 2}


def test_the_aim_follows_lasting_shares_and_not_a_swing() -> None:
    balance = Rebalancer(RebalancePolicy(smoothing=2.0))
    for _ in range(3):
        balance.opened("a")
        balance.opened("b")
    even = Assessment(frozenset({"a", "b"}), {"a": 0.5, "b": 0.5})
    only_a = Assessment(frozenset({"a", "b"}), {"a": 1.0})
    assert not balance.move_to("b", even, 0.0)
    # b drops out of the latency window for a moment: the pool stays as it is.
    assert not balance.move_to("b", only_a, 0.3)
    assert not balance.move_to("b", even, 0.6)
    assert balance.aim["b"] > 0.4
    # ...but when it stays out, its connections go, one at a time.
    moved = [t for t in (1.0, 2.0, 3.0, 4.0) if balance.move_to("b", only_a, t)]
    assert moved and balance.aim["b"] < 0.2
    # A node no longer fit leaves the aim at once.
    balance.observe(Assessment(frozenset({"a"}), {"a": 1.0}), 4.1)
    assert set(balance.aim) == {"a"}


def test_a_move_asks_connect_for_the_node_that_is_short() -> None:
    plan = Plan(nodes=("a", "b", "c"), hedge_delays=(0.01, 0.02, 0.03), race=False)
    assert first_on(plan, "c") == Plan(("c", "a", "b"), (0.03, 0.01, 0.02), False)
    assert first_on(plan, "a") is plan
    assert first_on(plan, "x") is plan  # not in the plan (drained...): connect() as usual
    race = Plan(nodes=("a", "b"), hedge_delays=(0.0, 0.0), race=True)
    assert first_on(race, "b") is race


def test_a_settled_pool_is_known_settled_until_something_changes() -> None:
    balance = Rebalancer()
    for node in "aabb":
        balance.opened(node)
    even = Assessment(frozenset({"a", "b"}), {"a": 0.5, "b": 0.5})
    assert balance.move_to("a", even, 1.0) is None
    assert balance.settled(even)  # the checkin path skips the decision
    same = Assessment(frozenset({"a", "b"}), {"a": 0.5, "b": 0.5})
    assert not balance.settled(same)  # a new assessment (made once a second) is looked at
    balance.closed("b")
    assert not balance.settled(even)  # so is a changed pool


def test_rebalance_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="far"):
        RebalancePolicy(far=0.5)
    with pytest.raises(ValueError, match="spacing"):
        RebalancePolicy(spacing=math.nan)


_node = st.builds(
    NodeDescription,
    name=st.sampled_from(["a", "b", "c", "d"]),
    state=st.sampled_from(["unknown", "up", "down"]),
    role=st.sampled_from(["unknown", "primary", "replica"]),
    latency=st.none() | st.floats(0.0, 1.0),
    served=st.none() | st.integers(0, 3),
    lag=st.none() | st.floats(0.0, 20.0),
    drained=st.booleans(),
    pending=st.integers(0, 3),
)


@given(
    nodes=st.lists(_node, max_size=4, unique_by=lambda n: n.name),
    wanted=st.sampled_from(WANTED_ROLES),
    max_lag=st.none() | st.floats(0.1, 10.0),
)
def test_shares_go_only_to_fitting_nodes_and_sum_to_one(
    nodes: list[NodeDescription], wanted: Any, max_lag: float | None
) -> None:
    found = assess(ClusterDescription("c", tuple(nodes)), wanted, max_lag=max_lag)
    assert set(found.shares) <= found.fit
    assert all(n.state != "down" and not n.drained for n in nodes if n.name in found.fit)
    if found.fit:
        assert sum(found.shares.values()) == pytest.approx(1.0)
    else:
        assert not found.shares


RECHECKS = [
    # (requests at, expected due of each): a burst coalesces, a steady stream is spaced out
    # by a doubling interval up to the cap, and a quiet spell starts over.
    ([0.0], [0.0]),
    ([0.0, 0.0, 0.05], [0.0, 0.1, 0.1]),
    ([0.0, 0.0, 0.15, 0.35, 0.75, 1.3], [0.0, 0.1, 0.3, 0.7, 1.2, 1.7]),
    ([0.0, 5.0], [0.0, 5.0]),
]


@pytest.mark.parametrize(("times", "dues"), RECHECKS)
def test_recheck_requests_are_coalesced_and_spaced(times: list[float], dues: list[float]) -> None:
    gate, policy = RecheckGate(), RecheckPolicy(first=0.1, cap=0.5, quiet=2.0)
    got = []
    for now in times:
        due, gate = gate.request(now, policy)
        got.append(due)
    assert got == pytest.approx(dues)


def test_recheck_policy_and_schedule() -> None:
    with pytest.raises(ValueError):
        RecheckPolicy(first=1.0, cap=0.5)
    later = ProbeSchedule(due_at=10.0, failures=2)
    assert later.no_later_than(3.0) == ProbeSchedule(due_at=3.0, failures=2)
    assert later.no_later_than(12.0) is later
