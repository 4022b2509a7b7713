"""role="prefer-replica" in the race: a primary that answers is a fallback, held aside while a
replica may still answer (at most the hedge policy's max_delay), never a winner outright.

Stand-ins from tests/unit/fakes.py (no database). Timing bounds stay 10x clear of
scheduling noise: "at once" is under a tenth of the wait it must not pay, "waited" over half.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

from fakes import (
    Attempts,
    RoleAdapter,
    fail,
    hang,
    in_threads,
    make_cluster,
    ok,
    run,
    settle,
    totals,
)

from clusterdb.core.policies import HedgePolicy
from clusterdb.runtime.cluster import Cluster

WAIT = 0.5


def cluster(wait: float = WAIT) -> Cluster:
    return make_cluster(adapter=RoleAdapter(sqlite3), hedge=HedgePolicy(max_delay=wait))


def test_race_a_replica_answering_after_the_primary_wins() -> None:
    c = cluster()
    attempts = Attempts(a=ok(role="primary"), b=ok(0.05, role="replica"), c=fail())
    conn = run(c, attempts, race_all=True, wanted="prefer-replica")
    assert conn.node == "b"
    settle(c)
    primary = next(x for x in attempts.made if x.node == "a")
    assert primary.closed.wait(5) and not conn.closed.is_set()
    assert totals(c) == {"connects": 2, "errors": 1, "discarded": 1, "pending": 0}
    stats = c.stats_snapshot()
    assert (stats.node("a").role, stats.node("a").discarded) == ("primary", 1)


def test_no_replica_can_answer_the_primary_is_used_at_once() -> None:
    c = cluster(wait=2.0)
    attempts = Attempts(a=ok(role="primary"), b=fail(0.01), c=fail(0.01))
    started = time.monotonic()
    conn = run(c, attempts, race_all=True, wanted="prefer-replica")
    assert time.monotonic() - started < 0.2
    assert conn.node == "a" and not conn.closed.is_set()
    settle(c)
    assert totals(c) == {"connects": 1, "errors": 2, "discarded": 0, "pending": 0}


def test_a_hung_replica_delays_the_primary_by_at_most_the_wait(release: threading.Event) -> None:
    c = cluster()
    attempts = Attempts(a=ok(role="primary"), b=hang(release), c=fail())
    started = time.monotonic()
    conn = run(c, attempts, race_all=True, wanted="prefer-replica", timeout=30)
    elapsed = time.monotonic() - started
    assert conn.node == "a"
    assert WAIT / 2 <= elapsed < WAIT * 10
    release.set()  # the hung attempt answers late: closed by its own thread, counted
    settle(c)
    late = next(x for x in attempts.made if x.node == "b")
    assert late.closed.wait(5) and not conn.closed.is_set()
    assert totals(c) == {"connects": 2, "errors": 1, "discarded": 1, "pending": 0}


def test_the_deadline_returns_the_primary_rather_than_failing(release: threading.Event) -> None:
    c = cluster(wait=5.0)
    attempts = Attempts(a=ok(role="primary"), b=hang(release), c=hang(release))
    started = time.monotonic()
    conn = run(c, attempts, race_all=True, wanted="prefer-replica", timeout=0.3)
    assert conn.node == "a"
    assert time.monotonic() - started < 3.0


def test_hedged_slow_replica_still_beats_the_primary_hedged_to() -> None:
    c = cluster()
    # The plan's order for prefer-replica: the replica, then the primary after a short hedge.
    attempts = Attempts(a=ok(0.1, role="replica"), b=ok(role="primary"), c=ok(role="primary"))
    conn = run(c, attempts, delay=0.01, wanted="prefer-replica")
    assert conn.node == "a"
    assert "c" not in attempts.started  # a primary in hand: no further node is started
    settle(c)
    assert totals(c) == {"connects": 2, "errors": 0, "discarded": 1, "pending": 0}


def test_two_primaries_answering_one_is_kept_the_other_closed(release: threading.Event) -> None:
    c = cluster(wait=0.2)
    attempts = Attempts(a=ok(role="primary"), b=ok(0.02, role="primary"), c=hang(release))
    conn = run(c, attempts, race_all=True, wanted="prefer-replica")
    assert conn.node == "a"
    other = next(x for x in attempts.made if x.node == "b")
    assert other.closed.is_set()  # closed before connect() returned
    release.set()
    settle(c)
    assert totals(c) == {"connects": 3, "errors": 0, "discarded": 2, "pending": 0}


def test_other_roles_take_the_first_primary_at_once(release: threading.Event) -> None:
    for wanted in ("any", "primary"):
        c = cluster(wait=5.0)
        attempts = Attempts(a=ok(role="primary"), b=hang(release), c=hang(release))
        started = time.monotonic()
        conn = run(c, attempts, race_all=True, wanted=wanted)
        assert conn.node == "a" and time.monotonic() - started < 0.5


def test_many_concurrent_prefer_replica_races_leave_exact_totals() -> None:
    c = cluster()
    attempts = Attempts(a=ok(0.001, role="primary"), b=ok(0.003, role="replica"), c=fail(0.001))
    workers, rounds = 16, 10
    barrier = threading.Barrier(workers)
    got: list[Any] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        for _ in range(rounds):
            conn = run(c, attempts, race_all=True, wanted="prefer-replica")
            with lock:
                got.append(conn)
            conn.close()

    in_threads(worker, workers, timeout=60)
    settle(c)
    calls = workers * rounds
    assert len(got) == calls
    assert {conn.node for conn in got} == {"b"}
    assert totals(c) == {"connects": 2 * calls, "errors": calls, "discarded": calls, "pending": 0}
    assert all(x.closed.is_set() for x in attempts.made)
