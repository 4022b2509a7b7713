"""The benchmark's pure statistics helpers (no server)."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.stats import (
    interleave,
    mean,
    median,
    meets,
    paired_ratio,
    percentile,
    ratio,
    spread,
    summarize,
)


def test_median_odd_and_even() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([7.0]) == 7.0


def test_percentile_interpolates_between_ranks() -> None:
    xs = [float(x) for x in range(1, 101)]  # 1..100
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 100.0
    assert percentile(xs, 95) == pytest.approx(95.05)
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)
    assert percentile([5.0], 99) == 5.0


def test_percentile_ignores_input_order() -> None:
    assert percentile([9.0, 1.0, 5.0, 3.0, 7.0], 75) == percentile([1.0, 3.0, 5.0, 7.0, 9.0], 75)


@pytest.mark.parametrize("q", [-1.0, 100.5])
def test_percentile_rejects_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], q)


def test_empty_and_nan_samples_are_errors() -> None:
    with pytest.raises(ValueError, match="no samples"):
        median([])
    with pytest.raises(ValueError, match="NaN"):
        mean([1.0, float("nan")])


def test_ratio() -> None:
    assert ratio(1.01, 1.0) == pytest.approx(1.01)
    assert ratio(0.0, 2.0) == 0.0
    with pytest.raises(ValueError, match="positive"):
        ratio(1.0, 0.0)


def test_meets() -> None:
    assert meets(1.01, 1.01, "<=")
    assert not meets(1.02, 1.01, "<=")
    assert meets(100.0, 100.0, ">=")
    assert not meets(99.9, 100.0, ">=")


def test_summarize() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.n, s.median, s.min, s.max, s.mean) == (5, 3.0, 1.0, 5.0, 3.0)
    assert s.p95 == pytest.approx(4.8)
    assert s.p99 == pytest.approx(4.96)


def test_interleave_alternates_and_rotates() -> None:
    assert interleave(["A", "B"], 4) == ["A", "B", "B", "A", "A", "B", "B", "A"]
    assert interleave(["A", "B", "C"], 3) == list("ABCBCACAB")
    assert interleave(["A"], 3) == ["A", "A", "A"]
    assert interleave([], 3) == []
    assert interleave(["A", "B"], 0) == []


def test_interleave_puts_each_contender_first_equally_often() -> None:
    order = interleave(["A", "B", "C"], 6)
    firsts = Counter(order[i] for i in range(0, len(order), 3))
    assert firsts == {"A": 2, "B": 2, "C": 2}


def test_spread_counts_are_exact_and_evenly_spread() -> None:
    assert spread({"A": 4, "B": 2}) == list("ABAABA")
    order = spread({"clusterdb": 30, "libpq": 3, "pymysql": 3})
    assert Counter(order) == {"clusterdb": 30, "libpq": 3, "pymysql": 3}
    # The three slow runs are not bunched: each third of the run holds one of each.
    for third in (order[0:12], order[12:24], order[24:36]):
        assert third.count("libpq") == 1
        assert third.count("pymysql") == 1


def test_spread_equal_counts_alternate() -> None:
    assert spread({"A": 3, "B": 3}) == list("ABABAB")
    assert spread({"A": 0, "B": 2}) == ["B", "B"]
    assert spread({}) == []
    with pytest.raises(ValueError):
        spread({"A": -1})


def test_paired_ratio_cancels_a_drift_that_hits_both_contenders() -> None:
    # The machine slows 3x over the run; b is 2 % slower than a in every round.
    base = [10.0 * (1 + 2 * i / 99) for i in range(100)]
    slower = [x * 1.02 for x in base]
    assert paired_ratio(slower, base) == pytest.approx(1.02)
    # A few rounds hit by a burst do not move the median of the pairs.
    burst = list(slower)
    for i in range(0, 100, 10):
        burst[i] *= 5
    assert paired_ratio(burst, base) == pytest.approx(1.02)


def test_paired_ratio_needs_pairs() -> None:
    with pytest.raises(ValueError, match="differ in number"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        paired_ratio([1.0], [0.0])
