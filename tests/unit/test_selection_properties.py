"""Hypothesis properties of selection, and the spread inside the latency window."""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.core.description import (
    ROLES,
    STATES,
    ClusterDescription,
    NodeDescription,
    WantedRole,
)
from clusterdb.core.latency import LatencyEstimate
from clusterdb.core.policies import HedgePolicy, SelectionPolicy
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.core.selection import Plan, plan, rank

ALLOWED_ROLES = {
    "any": {"primary", "replica", "unknown"},
    "primary": {"primary", "unknown"},
    "replica": {"replica", "unknown"},
    "prefer-replica": {"primary", "replica", "unknown"},
}
TIER_RANK = {
    "any": {"primary": 0, "replica": 0, "unknown": 0},
    "primary": {"primary": 0, "unknown": 1},
    "replica": {"replica": 0, "unknown": 1},
    "prefer-replica": {"replica": 0, "unknown": 1, "primary": 2},
}


@st.composite
def descriptions(draw: st.DrawFn) -> ClusterDescription:
    count = draw(st.integers(0, 7))
    nodes = []
    for i in range(count):
        nodes.append(
            NodeDescription(
                name=f"n{i}",
                state=draw(st.sampled_from(STATES)),
                role=draw(st.sampled_from(ROLES)),
                latency=draw(st.none() | st.floats(0.0, 2.0)),
                lag=draw(st.none() | st.floats(0.0, 100.0)),
                drained=draw(st.booleans()),
                pending=draw(st.integers(0, 3)),
            )
        )
    return ClusterDescription("c", tuple(nodes))


def fits(node: NodeDescription, wanted: WantedRole, max_lag: float | None) -> bool:
    """The test's own statement of the rules (an oracle independent of the code)."""
    if node.drained or node.role not in ALLOWED_ROLES[wanted]:
        return False
    lag_checked = wanted in ("replica", "prefer-replica") and node.role != "primary"
    too_far = max_lag is not None and node.lag is not None and node.lag > max_lag
    return not (lag_checked and too_far)


common = {
    "desc": descriptions(),
    "wanted": st.sampled_from(WANTED_ROLES),
    "max_lag": st.none() | st.floats(0.0, 50.0),
    "seed": st.integers(0, 2**32),
}


def run(desc: ClusterDescription, wanted: WantedRole, max_lag: float | None, seed: int) -> Plan:
    return plan(desc, wanted, rng=random.Random(seed), max_lag=max_lag)


def check_partition(desc: ClusterDescription, result: Plan) -> None:
    """Every node is either planned (once) or rejected with a reason."""
    names = [n.name for n in desc.nodes]
    assert len(set(result.nodes)) == len(result.nodes)
    assert set(result.nodes) | set(result.rejected) == set(names)
    assert not set(result.nodes) & set(result.rejected)
    assert all(result.rejected[n] for n in result.rejected)
    assert len(result.hedge_delays) == len(result.nodes)


def check_fit(
    desc: ClusterDescription, result: Plan, wanted: WantedRole, max_lag: float | None
) -> None:
    """Never a drained node, a node of the wrong role, or a replica beyond max_lag."""
    for name in result.nodes:
        assert fits(desc.node(name), wanted, max_lag), (name, desc.node(name))


def check_down_last_resort(
    desc: ClusterDescription, result: Plan, wanted: WantedRole, max_lag: float | None
) -> None:
    """Never a down node while a usable one fits; then every fitting down node, raced."""
    fitting = [n for n in desc.nodes if fits(n, wanted, max_lag)]
    usable = [n for n in fitting if n.state != "down"]
    states = {desc.node(name).state for name in result.nodes}
    if usable:
        assert "down" not in states
        assert set(result.nodes) == {n.name for n in usable}
    else:
        assert set(result.nodes) == {n.name for n in fitting}
        assert result.race == bool(fitting)
    assert bool(result.nodes) == bool(fitting)


def check_race(desc: ClusterDescription, result: Plan) -> None:
    """Race iff nothing known (or only down nodes); otherwise each node's hedge delay."""
    planned = [desc.node(n) for n in result.nodes]
    all_down = all(n.state == "down" for n in planned)
    nothing_known = all(n.latency is None for n in planned)
    assert result.race == (bool(planned) and (all_down or nothing_known))
    if result.race:
        assert set(result.hedge_delays) == {0.0}
    else:
        assert result.hedge_delays == tuple(HedgePolicy().delay(n) for n in planned)


@settings(max_examples=250, deadline=None)
@given(**common)
def test_plan_invariants(
    desc: ClusterDescription, wanted: WantedRole, max_lag: float | None, seed: int
) -> None:
    result = run(desc, wanted, max_lag, seed)
    check_partition(desc, result)
    check_fit(desc, result, wanted, max_lag)
    check_down_last_resort(desc, result, wanted, max_lag)
    check_race(desc, result)
    assert result == run(desc, wanted, max_lag, seed)  # deterministic for a seed


@settings(max_examples=150, deadline=None)
@given(**common)
def test_order_tiers_then_measured_then_unmeasured(
    desc: ClusterDescription, wanted: WantedRole, max_lag: float | None, seed: int
) -> None:
    result = run(desc, wanted, max_lag, seed)
    planned = [desc.node(n) for n in result.nodes]
    if any(n.state == "down" for n in planned):
        return
    ranks = [TIER_RANK[wanted][n.role] for n in planned]
    assert ranks == sorted(ranks)
    sel = SelectionPolicy()
    for tier in set(ranks):
        nodes = [n for n, r in zip(planned, ranks, strict=True) if r == tier]
        kinds = [0 if n.state == "up" and n.latency is not None else 1 for n in nodes]
        assert kinds == sorted(kinds)
        measured = [n for n, k in zip(nodes, kinds, strict=True) if k == 0]
        if not measured:
            continue
        costs = [sel.cost(n) or 0.0 for n in measured]
        limit = sel.limit(min(costs))
        inside = [c <= limit for c in costs]
        assert inside == sorted(inside, reverse=True)  # the window first
        outside = [c for c, i in zip(costs, inside, strict=True) if not i]
        assert outside == sorted(outside)


def _first_counts(desc: ClusterDescription, draws: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(plan(desc, rng=rng).nodes[0] for _ in range(draws))


def _expected_shares(desc: ClusterDescription, sel: SelectionPolicy) -> dict[str, float]:
    costs = {n.name: sel.cost(n) or 0.0 for n in desc.nodes}
    fastest = min(costs.values())
    window = {k: c for k, c in costs.items() if c <= sel.limit(fastest)}
    weights = {k: sel.weight(c, fastest) for k, c in window.items()}
    total = sum(weights.values())
    return {k: weights.get(k, 0.0) / total for k in costs}


def test_spread_in_window_matches_weights_over_20000_draws() -> None:
    latencies = (0.005, 0.005, 0.006, 0.0085, 0.050)  # four in the window, one far outside
    desc = ClusterDescription(
        "c",
        tuple(NodeDescription(f"n{i}", state="up", latency=x) for i, x in enumerate(latencies)),
    )
    counts = _first_counts(desc, 20_000, seed=42)
    shares = _expected_shares(desc, SelectionPolicy())
    assert shares["n4"] == 0.0 and counts["n4"] == 0
    assert shares["n0"] == pytest.approx(shares["n1"])
    for name, share in shares.items():
        assert counts[name] / 20_000 == pytest.approx(share, abs=0.012), name


@settings(max_examples=8, deadline=None)
@given(
    latencies=st.lists(st.floats(0.001, 0.02), min_size=2, max_size=4),
    pending=st.lists(st.integers(0, 2), min_size=4, max_size=4),
    seed=st.integers(0, 2**32),
)
def test_spread_property(latencies: list[float], pending: list[int], seed: int) -> None:
    desc = ClusterDescription(
        "c",
        tuple(
            NodeDescription(f"n{i}", state="up", latency=x, pending=pending[i])
            for i, x in enumerate(latencies)
        ),
    )
    draws = 4000
    counts = _first_counts(desc, draws, seed)
    for name, share in _expected_shares(desc, SelectionPolicy()).items():
        assert counts[name] / draws == pytest.approx(share, abs=0.035), name


def test_second_place_follows_weights_without_replacement() -> None:
    desc = ClusterDescription(
        "c", tuple(NodeDescription(n, state="up", latency=0.005) for n in "abc")
    )
    rng = random.Random(9)
    seconds = Counter(plan(desc, rng=rng).nodes[1] for _ in range(9000))
    assert all(seconds[n] / 9000 == pytest.approx(1 / 3, abs=0.02) for n in "abc")


def _connect_time(base: float, rng: random.Random, noisy: bool) -> float:
    """Loopback-like connect times: tight most of the time, heavy-tailed during bursts of
    machine noise that slow every node at once (as measured through the test proxies)."""
    return base + rng.expovariate(1 / (0.010 if noisy else 0.001))


def _sequential_connects(seed: int, count: int = 200) -> Counter[str]:
    rng = random.Random(seed)
    bases = {"plus0": 0.006, "plus3": 0.022, "plus15": 0.070}
    estimates = {name: LatencyEstimate() for name in bases}
    now, wins = 0.0, Counter[str]()
    for i in range(count):
        noisy = i < 20 or 100 <= i < 120  # 20 % of the connects in noise
        desc = ClusterDescription(
            "c",
            tuple(
                NodeDescription(
                    n, state="unknown" if e.value is None else "up", latency=e.value_at(now)
                )
                for n, e in estimates.items()
            ),
        )
        chosen = plan(desc, rng=rng)
        took = {n: _connect_time(bases[n], rng, noisy) for n in chosen.nodes}
        # A race opens every node and records every result; a hedged plan's first node wins
        # (the racer's hedge is not modelled: it only ever helps a slow first node).
        tried = chosen.nodes if chosen.race else chosen.nodes[:1]
        for name in tried:
            estimates[name] = estimates[name].observe(took[name], now + took[name])
        winner = min(tried, key=took.__getitem__)
        wins[winner] += 1
        now += took[winner] + 0.001
    return wins


@pytest.mark.parametrize("seed", range(10))
def test_defaults_send_90_percent_of_sequential_connects_to_the_fastest(seed: int) -> None:
    """Issue 4's must-show on synthetic samples: proxies adding 0, +3 and +15 ms per round
    trip (~4 round trips per connect), 200 sequential connects, estimates kept as the runtime
    keeps them (observe, then value_at)."""
    wins = _sequential_connects(seed)
    assert wins["plus0"] >= 180, wins


def test_a_ranking_with_its_plans_worked_out_draws_orders_as_often_as_one_without() -> None:
    desc = ClusterDescription(
        "c",
        tuple(
            NodeDescription(name, state="up", latency=latency)
            for name, latency in (("a", 0.0010), ("b", 0.0012), ("c", 0.0016), ("far", 0.05))
        ),
    )
    plain = rank(desc)
    worked = plain.with_plans()
    assert worked.plans is not None and plain.plans is None
    chances, plans = worked.plans
    assert len(plans) == 6 and all(p.nodes[-1] == "far" for p in plans)  # 3! window orders
    assert math.isclose(chances[-1], 1.0)
    draws = 30000
    seen = {"plain": Counter[tuple[str, ...]](), "worked": Counter[tuple[str, ...]]()}
    rng = random.Random(7)
    for _ in range(draws):
        seen["plain"][plain.draw(rng).nodes] += 1
        seen["worked"][worked.draw(rng).nodes] += 1
    assert set(seen["plain"]) == set(seen["worked"]) == {p.nodes for p in plans}
    previous = 0.0
    for chance, p in zip(chances, plans, strict=True):
        expected = (chance - previous) * draws
        previous = chance
        for kind in ("plain", "worked"):  # within 5 standard deviations of the exact chance
            assert abs(seen[kind][p.nodes] - expected) < 5 * math.sqrt(expected) + 1, (kind, p)
        assert p.hedge_delays == tuple(plain.delays[n] for n in p.nodes)


def test_a_large_window_keeps_the_step_by_step_draw() -> None:
    desc = ClusterDescription(
        "c", tuple(NodeDescription(f"n{i}", state="up", latency=0.001) for i in range(40))
    )
    assert rank(desc).with_plans().plans is None


class _CountingRandom(random.Random):
    """Counts the uniform draws taken from it."""

    calls = 0

    def random(self) -> float:
        self.calls += 1
        return super().random()


@dataclass(frozen=True)
class _CountingHedge(HedgePolicy):
    """A hedge policy that counts the delays it works out (a list, as the value is frozen)."""

    counted: list[int] = field(default_factory=lambda: [0])

    def delay(self, node: NodeDescription) -> float:
        self.counted[0] += 1
        return super().delay(node)


def test_a_draw_from_a_kept_ranking_of_300_nodes_redoes_no_ranking_work() -> None:
    """Drawing is what a connect pays while the ranking is kept: one uniform per node of the
    window and a sort, never a cost, a weight or a hedge delay worked out again."""
    rng = random.Random(3)
    desc = ClusterDescription(
        "c",
        tuple(
            NodeDescription(f"n{i}", state="up", latency=rng.uniform(0.001, 0.020))
            for i in range(300)
        ),
    )
    hedge = _CountingHedge()
    ranking = rank(desc, hedge=hedge)
    assert hedge.counted[0] == 300
    window = len(ranking.groups[0][0])
    assert 1 < window < 300 and ranking.groups[0][1]
    counting = _CountingRandom(5)
    for _ in range(50):
        drawn = ranking.draw(counting)
        assert len(drawn.nodes) == 300 and drawn.hedge_delays[0] == ranking.delays[drawn.nodes[0]]
    assert hedge.counted[0] == 300
    assert counting.calls == 50 * window


def test_a_large_window_draws_first_and_second_places_by_weight() -> None:
    """The one-sort draw of a window too large for worked-out plans keeps the law of drawing
    one node at a time: first place in proportion to the weights, second place among the
    rest in proportion to theirs."""
    latencies = [0.001] * 4 + [0.002] * 4  # weights 1 and 1/4 under the default exponent 2
    desc = ClusterDescription(
        "c",
        tuple(NodeDescription(f"n{i}", state="up", latency=x) for i, x in enumerate(latencies)),
    )
    ranking = rank(desc, selection=SelectionPolicy(window_ms=5.0))
    assert ranking.with_plans().plans is None and len(ranking.groups[0][0]) == 8
    rng = random.Random(11)
    draws = 20000
    firsts, seconds = Counter[str](), Counter[str]()
    for _ in range(draws):
        nodes = ranking.draw(rng).nodes
        firsts[nodes[0]] += 1
        seconds[nodes[1]] += 1
    fast_first = sum(firsts[f"n{i}"] for i in range(4)) / draws
    assert fast_first == pytest.approx(4 / 5, abs=0.015)  # 4 x 1 of 4 x 1 + 4 x 0.25
    # Second place: after a fast first (p 0.8) the odds are 3 / 4; after a slow one, 4 / 4.75.
    fast_second = sum(seconds[f"n{i}"] for i in range(4)) / draws
    assert fast_second == pytest.approx(0.8 * 3 / 4 + 0.2 * 4 / 4.75, abs=0.015)
