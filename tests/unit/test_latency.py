"""Peak EWMA with a recent minimum: deterministic, every ``now`` given explicitly."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.core.latency import DEFAULT_DECAY, LatencyEstimate


def test_first_sample_sets_value_and_minimum() -> None:
    est = LatencyEstimate().observe(0.020, now=100.0)
    assert est.value == 0.020
    assert est.minimum == 0.020
    assert est.last_update == 100.0
    assert est.samples == 1


def test_empty_estimate_knows_nothing() -> None:
    est = LatencyEstimate()
    assert est.value is None
    assert est.minimum is None
    assert est.value_at(5.0) is None


def test_higher_sample_raises_at_once() -> None:
    est = LatencyEstimate().observe(0.010, 0.0).observe(0.200, 0.001)
    assert est.value == 0.200


def test_lower_sample_after_long_quiet_counts_almost_fully() -> None:
    est = LatencyEstimate(alpha=0.0).observe(0.100, 0.0).observe(0.010, 1000.0)
    assert est.value == pytest.approx(0.010, abs=1e-9)


def test_lower_sample_follows_peak_ewma_formula() -> None:
    est = LatencyEstimate(alpha=0.0).observe(0.100, 0.0).observe(0.010, 5.0)
    w = math.exp(-5.0 / DEFAULT_DECAY)
    assert est.value == pytest.approx(0.100 * w + 0.010 * (1 - w))


def test_lower_sample_moves_at_least_alpha_of_the_way() -> None:
    est = LatencyEstimate(alpha=0.5).observe(0.100, 0.0).observe(0.020, 0.001)
    assert est.value == pytest.approx(0.060)


def test_lowering_is_gradual_one_fast_sample_does_not_undo_a_slowdown() -> None:
    est = LatencyEstimate().observe(0.005, 0.0).observe(0.500, 1.0).observe(0.005, 1.01)
    assert est.value is not None and est.value > 0.2


def test_clock_going_backwards_counts_as_no_time() -> None:
    est = LatencyEstimate(alpha=0.0).observe(0.100, 10.0).observe(0.010, 9.0)
    assert est.value == pytest.approx(0.100)


def test_minimum_covers_only_the_last_window_samples() -> None:
    est = LatencyEstimate(window=3)
    for i, sample in enumerate([0.001, 0.050, 0.040, 0.030]):
        est = est.observe(sample, float(i))
    assert est.recent == (0.050, 0.040, 0.030)
    assert est.minimum == 0.030


def test_lower_bound_raises_but_never_lowers() -> None:
    est = LatencyEstimate().observe(0.010, 0.0)
    raised = est.observe_lower_bound(0.030, 1.0)
    assert raised.value == 0.030
    assert raised.last_update == 1.0
    assert raised.observe_lower_bound(0.020, 2.0) is raised
    slow = LatencyEstimate().observe(0.5, 0.0).observe_lower_bound(0.1, 1.0)
    assert slow.value == 0.5


def test_lower_bound_is_not_a_sample() -> None:
    est = LatencyEstimate().observe(0.010, 0.0).observe_lower_bound(0.5, 1.0)
    assert est.minimum == 0.010
    assert est.recent == (0.010,)
    assert est.samples == 1


def test_lower_bound_on_empty_estimate() -> None:
    est = LatencyEstimate().observe_lower_bound(0.05, 3.0)
    assert est.value == 0.05
    assert est.minimum is None


def _observed(*samples_ms: float, start: float = 0.0, step: float = 0.01) -> LatencyEstimate:
    est = LatencyEstimate()
    for i, ms in enumerate(samples_ms):
        est = est.observe(ms / 1000, start + i * step)
    return est


def test_value_at_tempers_a_lone_spike_with_the_recent_best() -> None:
    est = _observed(6, 6, 40)
    assert est.value == 0.040  # the Peak EWMA itself rose at once
    assert est.floor == 0.006
    assert est.value_at(0.02) == pytest.approx(math.sqrt(0.040 * 0.006))


def test_value_at_counts_a_repeated_slowness_fully() -> None:
    est = _observed(6, 6, 6, 130, 130, 130)
    assert est.floor == pytest.approx(0.130)
    assert est.value_at(0.05) == pytest.approx(0.130)
    assert est.minimum == 0.006  # the 10-sample minimum still remembers


def test_value_at_decays_toward_zero_so_an_unused_node_is_tried_again() -> None:
    est = _observed(20)
    assert est.value_at(0.0) == pytest.approx(0.020)
    assert est.value_at(DEFAULT_DECAY * math.log(2)) == pytest.approx(0.010)
    later = est.value_at(1000.0)
    assert later is not None and later < 1e-9


def test_value_at_keeps_the_ranking_of_idle_nodes() -> None:
    near, far = _observed(5), _observed(50)
    a, b = near.value_at(60.0), far.value_at(60.0)
    assert a is not None and b is not None and b / a == pytest.approx(10.0)


def test_lower_bound_raises_the_floor_so_a_hung_node_ranks_as_slow_as_its_silence() -> None:
    est = _observed(6, 6, 6).observe_lower_bound(0.018, 0.05)
    assert est.bound == 0.018
    assert est.value_at(0.05) == pytest.approx(0.018)


def test_a_sample_clears_the_lower_bound() -> None:
    est = _observed(6, 6, 6).observe_lower_bound(0.018, 0.05).observe(0.040, 0.06)
    assert est.bound is None
    assert est.floor == 0.006


def test_value_at_without_samples_decays_toward_zero() -> None:
    est = LatencyEstimate().observe_lower_bound(0.4, 0.0)
    later = est.value_at(100.0)
    assert later is not None and later < 0.001


def test_observe_returns_new_object_and_leaves_old_unchanged() -> None:
    est = LatencyEstimate().observe(0.010, 0.0)
    est.observe(0.5, 1.0)
    assert est.value == 0.010


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_rejects_bad_samples(bad: float) -> None:
    with pytest.raises(ValueError):
        LatencyEstimate().observe(bad, 0.0)
    with pytest.raises(ValueError):
        LatencyEstimate().observe_lower_bound(bad, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"decay": 0.0},
        {"decay": -1.0},
        {"window": 0},
        {"alpha": 1.5},
        {"alpha": -0.1},
        {"settle": 0},
        {"settle": 11},
    ],
)
def test_rejects_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LatencyEstimate(**kwargs)  # type: ignore[arg-type]


samples = st.lists(st.tuples(st.floats(0.0, 10.0), st.floats(0.0, 5.0)), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(samples)
def test_value_stays_between_min_and_max_of_samples(steps: list[tuple[float, float]]) -> None:
    est, now = LatencyEstimate(), 0.0
    for sample, dt in steps:
        now += dt
        est = est.observe(sample, now)
    values = [s for s, _ in steps]
    assert est.value is not None
    assert min(values) - 1e-12 <= est.value <= max(values) + 1e-12
    assert est.minimum == min(values[-est.window :])
    assert est.value >= est.minimum - 1e-12
