"""Backoff, hedge delay and latency window: pure values, seeded randomness."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.core.description import NodeDescription
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff(jitter=0.0)
    rng = random.Random(1)
    delays = [backoff.delay(n, rng) for n in range(1, 9)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]


def test_backoff_recovered_node_is_probed_within_a_few_seconds() -> None:
    backoff = Backoff()
    rng = random.Random(7)
    assert max(backoff.delay(n, rng) for n in range(1, 200)) <= 2.0 * 1.15


def test_backoff_huge_failure_count_does_not_overflow() -> None:
    assert Backoff(jitter=0.0).delay(10**9, random.Random(0)) == 2.0


def test_backoff_factor_one_is_constant() -> None:
    assert Backoff(initial=0.5, factor=1.0, cap=2.0, jitter=0.0).delay(50, random.Random()) == 0.5


def test_backoff_jitter_spreads_both_ways() -> None:
    backoff = Backoff()
    rng = random.Random(3)
    delays = [backoff.delay(10, rng) for _ in range(2000)]
    assert min(delays) < 2.0 * 0.9
    assert max(delays) > 2.0 * 1.1


def test_backoff_is_deterministic_for_a_seed() -> None:
    a = [Backoff().delay(n, random.Random(5)) for n in range(1, 10)]
    b = [Backoff().delay(n, random.Random(5)) for n in range(1, 10)]
    assert a == b


def test_backoff_rejects_zero_failures() -> None:
    with pytest.raises(ValueError):
        Backoff().delay(0, random.Random())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": 0.0},
        {"factor": 0.5},
        {"cap": 0.01},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"initial": math.nan},
    ],
)
def test_backoff_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


@settings(max_examples=200, deadline=None)
@given(
    initial=st.floats(0.001, 5.0),
    factor=st.floats(1.0, 10.0),
    extra=st.floats(0.0, 100.0),
    jitter=st.floats(0.0, 0.99),
    failures=st.integers(1, 10**6),
    seed=st.integers(0, 2**32),
)
def test_backoff_bounds(
    initial: float, factor: float, extra: float, jitter: float, failures: int, seed: int
) -> None:
    backoff = Backoff(initial=initial, factor=factor, cap=initial + extra, jitter=jitter)
    delay = backoff.delay(failures, random.Random(seed))
    assert 0.0 <= delay <= backoff.cap * (1 + jitter) + 1e-9
    assert delay >= min(initial, backoff.cap) * (1 - jitter) - 1e-9


def test_hedge_delay_is_a_multiple_of_latency_clamped() -> None:
    hedge = HedgePolicy()
    assert hedge.delay(NodeDescription("a", latency=0.020)) == pytest.approx(0.060)
    assert hedge.delay(NodeDescription("a", latency=0.001)) == 0.010
    assert hedge.delay(NodeDescription("a", latency=2.0)) == 0.5
    assert hedge.delay(NodeDescription("a")) == 0.05


@pytest.mark.parametrize(("pending", "expected"), [(0, 0.030), (1, 0.060), (4, 0.150), (20, 0.5)])
def test_hedge_delay_grows_with_the_attempts_already_in_flight(
    pending: int, expected: float
) -> None:
    node = NodeDescription("a", latency=0.010, pending=pending)
    assert HedgePolicy().delay(node) == pytest.approx(expected)


def test_hedge_rejects_min_above_max() -> None:
    with pytest.raises(ValueError):
        HedgePolicy(min_delay=0.2, max_delay=0.1)


def test_selection_cost_counts_pending_attempts() -> None:
    sel = SelectionPolicy()
    assert sel.cost(NodeDescription("a", latency=0.01, pending=2)) == pytest.approx(0.03)
    assert sel.cost(NodeDescription("a")) is None
    assert sel.cost(NodeDescription("a", latency=0.0)) == pytest.approx(1e-6)


def test_selection_window_is_relative_plus_absolute() -> None:
    sel = SelectionPolicy(window_ms=2.0, window_ratio=0.5)
    assert sel.limit(0.010) == pytest.approx(0.017)


def test_selection_weight_falls_with_cost() -> None:
    sel = SelectionPolicy(weight_exponent=2.0)
    assert sel.weight(0.010, 0.010) == 1.0
    assert sel.weight(0.020, 0.010) == pytest.approx(0.25)
    assert SelectionPolicy(weight_exponent=500).weight(1.0, 1e-6) == 0.0  # no overflow


def test_default_window_excludes_a_node_three_round_trips_of_3ms_further() -> None:
    """Issue 4's must-show, on the estimates: a loopback connect ~7 ms; +3 ms per round trip
    over ~4 round trips is ~+12 ms."""
    sel = SelectionPolicy()
    assert sel.limit(0.007) < 0.007 + 0.012
    assert sel.limit(0.007) >= 0.007 * 1.4  # but holds a node whose estimate is at a peak


def test_selection_trial_is_for_estimates_of_nodes_that_served_too_few() -> None:
    policy = SelectionPolicy(trial_serves=2)
    assert policy.on_trial(NodeDescription("a", latency=0.01, served=1))
    assert not policy.on_trial(NodeDescription("a", latency=0.01, served=2))
    assert not policy.on_trial(NodeDescription("a", latency=0.01))  # not counted: enough
    assert not policy.on_trial(NodeDescription("a", served=0))  # no estimate to try out


@pytest.mark.parametrize("kwargs", [{"trial_serves": -1}, {"trial_weight": -0.1}])
def test_selection_rejects_bad_trial_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="trial"):
        SelectionPolicy(**kwargs)  # type: ignore[arg-type]
