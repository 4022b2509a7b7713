"""RankingCache: a kept ranking is handed back while its epoch stands and for at most its ttl;
a node's estimate may move within its band (10 %, at least the floor) without ending it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdb.core.description import ClusterDescription, NodeDescription
from clusterdb.core.ranking_cache import WORK_OUT_AFTER, RankingCache
from clusterdb.core.selection import rank

DESC = ClusterDescription("c", (NodeDescription("a", state="up", latency=0.002),))
RANKING = rank(DESC, "any")


def test_a_stored_ranking_is_kept_for_its_role_until_its_ttl() -> None:
    cache = RankingCache(ttl=1.0)
    assert cache.get("any", 10.0) is None
    cache.store("any", RANKING, DESC, 10.0)
    kept = cache.get("any", 10.5)
    assert kept is not None and kept[2] is RANKING and kept[3] is DESC
    assert cache.get("primary", 10.5) is None  # one per wanted role
    assert cache.get("any", 11.0) is None  # ttl over


def test_invalidate_ends_every_kept_ranking_and_a_new_one_is_kept_again() -> None:
    cache = RankingCache()
    cache.store("any", RANKING, DESC, 0.0)
    cache.store("replica", RANKING, DESC, 0.0)
    cache.invalidate()
    assert cache.get("any", 0.1) is None and cache.get("replica", 0.1) is None
    cache.store("any", RANKING, DESC, 0.1)
    assert cache.get("any", 0.2) is not None


def test_the_band_is_ten_percent_of_the_ranked_estimate_or_the_floor() -> None:
    cache = RankingCache(floor=0.00025)
    assert cache.band(0.010) == pytest.approx((0.009, 0.011))  # 10 % above the floor
    assert cache.band(0.0012) == pytest.approx((0.00095, 0.00145))  # the floor: 0.25 ms
    low, high = cache.band(None)  # ranked with no estimate: any estimate is a move
    assert low > high


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 0.01))
def test_the_band_matches_the_drift_rule(ranked: float, value: float, floor: float) -> None:
    low, high = RankingCache(floor=floor).band(ranked)
    tolerance = max(0.1 * ranked, floor)
    if not math.isclose(abs(value - ranked), tolerance, rel_tol=1e-9, abs_tol=1e-15):
        assert (low <= value <= high) == (abs(value - ranked) <= tolerance)


def test_a_kept_ranking_is_worked_out_only_once_it_has_served_as_many_draws() -> None:
    """Rankings replaced soon (most, on a busy machine) never pay for with_plans(); one kept
    for WORK_OUT_AFTER draws is worked out once, and drawn from as such from then on."""
    window = ClusterDescription(
        "c", tuple(NodeDescription(n, state="up", latency=0.002) for n in "abc")
    )
    plain = rank(window, "any")
    assert plain.plans is None
    cache = RankingCache()
    cache.store("any", plain, window, 0.0)  # its first draw was the store's connect
    drawn = []
    for _ in range(WORK_OUT_AFTER + 3):
        kept = cache.get("any", 0.1)
        assert kept is not None
        drawn.append(cache.reuse("any", kept))
    assert all(r is plain for r in drawn[: WORK_OUT_AFTER - 2])
    worked = drawn[WORK_OUT_AFTER - 2]
    assert worked is not plain and worked.plans is not None and len(worked.plans[1]) == 6
    assert all(r is worked for r in drawn[WORK_OUT_AFTER - 2 :])
    kept = cache.get("any", 0.1)
    assert kept is not None and kept[2] is worked and kept[3] is window
