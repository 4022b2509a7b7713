"""The hedge budget (core.race_course.HedgeBudget, HedgeLedger) and what the racers make of
it: a refused hedge waits, a burst of slow connects opens few spare attempts."""

from __future__ import annotations

import threading
import time

import pytest
from fakes import Attempts, hang, in_threads, make_cluster, ok, run, settle, totals

from clusterdb.core.race_course import HedgeBudget, HedgeLedger, RaceCourse
from clusterdb.core.selection import Plan
from clusterdb.runtime.cluster import Cluster


@pytest.mark.parametrize(
    ("hedging", "connecting", "allowed"),
    [
        (0, 1, True),  # a lone connect hedges
        (2, 1, True),  # past three silent nodes at once
        (3, 1, False),  # not four
        (2, 10, True),  # 2 < 2 + 1.0
        (3, 10, False),
        (21, 200, True),  # a burst of 200: 22 hedges at most
        (22, 200, False),
    ],
)
def test_budget_is_a_floor_plus_a_share_of_the_connects_in_flight(
    hedging: int, connecting: int, allowed: bool
) -> None:
    assert HedgeBudget().allows(hedging, connecting) is allowed


def test_a_ledger_counts_what_it_allows_and_refuses_past_the_budget() -> None:
    ledger = HedgeLedger(HedgeBudget(ratio=0.5, minimum=1.0))
    ledger.connecting = 4  # 1 + 0.5 * 4 = 3 hedges
    assert [ledger.try_hedge() for _ in range(4)] == [True, True, True, False]
    assert ledger.hedging == 3
    ledger.hedging -= 1  # a race that hedged once ended
    assert ledger.try_hedge()


def test_a_ledger_counts_the_hedges_own_connect_when_none_was_counted() -> None:
    ledger = HedgeLedger()
    ledger.connecting = -3  # a caller that records outcomes of connects it did not count
    assert [ledger.try_hedge() for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("value", [-0.1, float("nan")])
def test_a_budget_refuses_nothing_it_should_not_with_defaults(value: float) -> None:
    budget = HedgeBudget()
    assert budget.allows(0, 0) and not budget.allows(10**6, 1)
    assert HedgeBudget(ratio=0.0, minimum=1.0).allows(0, 10**6)
    assert not HedgeBudget(ratio=0.0, minimum=1.0).allows(1, 10**6)
    assert not HedgeBudget(ratio=value, minimum=0.0).allows(0, 5)


def test_a_refused_hedge_is_asked_again_one_delay_later_and_counted_when_started() -> None:
    plan = Plan(("a", "b", "c"), (0.02, 0.03, 0.05), race=False)
    course = RaceCourse(plan, 0.0, 2.0, 0.5)
    assert course.timer(0.02) == "hedge" and course.following == "b"
    course.deferred(0.02)
    assert course.wake_at() == pytest.approx(0.04)
    assert course.timer(0.03) == "wait"
    assert course.timer(0.04) == "hedge"
    assert course.start_next(0.04, hedge=True) == 1 and course.hedges == 1
    assert course.wake_at() == pytest.approx(0.07)
    assert course.start_next(0.05) == 2 and course.hedges == 1  # a failure: no hedge


def _connects(cluster: Cluster, attempts: Attempts, count: int) -> list[object]:
    """``count`` connects at once (plans a, b, c; hedge delays 20 ms): their connections."""
    results: list[object] = []
    lock = threading.Lock()

    def one() -> None:
        conn = run(cluster, attempts, delay=0.02, timeout=10.0)
        with lock:
            results.append(conn)

    in_threads(one, count)
    return results


def test_a_burst_of_slow_connects_hedges_within_the_budget() -> None:
    """12 connects at once, every node slow (the first silent for 0.5 s, the others 1 s):
    with the default budget (2 + 0.1 x 12 = 3.2) 4 connects hedge at once, not 12 (a few
    more may as the first races end); every connect succeeds on the first node."""
    release = threading.Event()
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=ok(after=1.0), c=ok(after=1.0))
    cluster.hedges.connecting = 12  # as cluster.begin() counts them
    threading.Timer(0.5, release.set).start()
    results = _connects(cluster, attempts, 12)
    settle(cluster)
    assert [getattr(c, "node", None) for c in results] == ["a"] * 12
    assert cluster.hedges.hedging == 0  # every race gave its hedges back
    spare = {n.name: n.connects for n in cluster.stats_snapshot().nodes if n.name != "a"}
    assert 4 <= sum(spare.values()) <= 16, spare  # 4 connects hedge (to b, then c), not 12
    assert totals(cluster)["pending"] == 0


def test_hedges_stuck_on_hung_nodes_do_not_starve_the_other_connects() -> None:
    """8 connects at once, the first two nodes of their plan hung: the connects holding the
    budget's units (2 + 0.1 x 8 = 2.8: three) hedge on past the second hung node without
    another unit, win on the third, and free their units for the others: every connect
    succeeds on c long before the deadline."""
    release = threading.Event()
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=hang(release), c=ok())
    cluster.hedges.connecting = 8
    began = time.monotonic()
    try:
        results = _connects(cluster, attempts, 8)
    finally:
        release.set()
    took = time.monotonic() - began
    assert [getattr(c, "node", None) for c in results] == ["c"] * 8
    assert took < 5.0  # the deadline is 10 s; a starved connect would wait for it
    settle(cluster)
    assert cluster.hedges.hedging == 0
