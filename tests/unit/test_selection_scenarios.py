"""Selection scenario tables (tests/unit/scenarios/*.json, format in its README.md).

PyMongo's server-selection tests are the model: a description in, the expected plan and
rejections out, no server. Each scenario runs under several seeds: members of an order group
may come in any order, everything else must be the same every time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest
from scenario_tables import load

from clusterdb.core.description import ClusterDescription, NodeDescription
from clusterdb.core.policies import SelectionPolicy
from clusterdb.core.selection import Plan, plan

SEEDS = range(20)


def _run(case: dict[str, Any], seed: int) -> Plan:
    nodes = tuple(NodeDescription(**n) for n in case["nodes"])
    desc = ClusterDescription("c", nodes, writer=case.get("writer"))
    return plan(
        desc,
        case.get("wanted", "any"),
        rng=random.Random(seed),
        max_lag=case.get("max_lag"),
        selection=SelectionPolicy(**case.get("selection", {})),
    )


def _matches(order: Sequence[str], expected: Sequence[str | list[str]]) -> bool:
    position = 0
    for group in expected:
        members = [group] if isinstance(group, str) else group
        if sorted(order[position : position + len(members)]) != sorted(members):
            return False
        position += len(members)
    return position == len(order)


@pytest.mark.parametrize("case", load())
def test_scenario(case: dict[str, Any]) -> None:
    expect = case["expect"]
    orders = set()
    for seed in SEEDS:
        result = _run(case, seed)
        assert _matches(result.nodes, expect["order"]), (case["description"], result.nodes)
        assert result.race == expect["race"], case["description"]
        assert len(result.hedge_delays) == len(result.nodes)
        if "hedge_delays" in expect:
            assert result.hedge_delays == pytest.approx(expect["hedge_delays"])
        assert set(result.rejected) == set(expect["rejected"]), result.rejected
        for name, fragment in expect["rejected"].items():
            assert fragment in result.rejected[name]
        all_names = {n["name"] for n in case["nodes"]}
        assert set(result.nodes) | set(result.rejected) == all_names
        assert not set(result.nodes) & set(result.rejected)
        orders.add(result.nodes)
    groups = [g for g in expect["order"] if isinstance(g, list) and len(g) > 1]
    if groups and not expect["race"]:
        assert len(orders) > 1, "a group in the window should be drawn in varying orders"


def test_scenario_files_are_found() -> None:
    assert len(load()) >= 30


def test_down_reason_says_for_how_long_when_given_now() -> None:
    desc = ClusterDescription(
        "c",
        (
            NodeDescription("a", state="down", down_since=100.0),
            NodeDescription("b", state="up", latency=0.01),
        ),
    )
    result = plan(desc, rng=random.Random(0), now=112.5)
    assert result.rejected["a"].startswith("down for 12.5 s")
    assert plan(desc, rng=random.Random(0)).rejected["a"].startswith("down (")


def test_unknown_wanted_role_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="prefer-replica"):
        plan(ClusterDescription("c"), "standby", rng=random.Random())  # type: ignore[arg-type]


def test_plan_is_immutable() -> None:
    result = plan(ClusterDescription("c", (NodeDescription("a"),)), rng=random.Random())
    with pytest.raises(TypeError):
        result.rejected["a"] = "x"  # type: ignore[index]
