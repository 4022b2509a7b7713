"""The race's concurrency logic, with plain attempt functions standing in for a driver.

An attempt here is a callable that sleeps, raises or returns a sentinel object: no database
is involved (what an attempt does against a server is tested in tests/server). Timing
assertions keep every bound at least 10x clear of scheduling noise: a "fast" path is asserted
under a bound 10x below the delay it must not wait for, a "slow" one over half its delay.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest
from fakes import (
    NODES,
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

from clusterdb.errors import AllNodesFailed, Error

pytestmark = pytest.mark.usefixtures("no_thread_left")


def test_race_picks_the_first_success_and_closes_the_late_ones(release: threading.Event) -> None:
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=ok(), c=hang(release))
    conn = run(cluster, attempts, race_all=True)
    assert conn.node == "b"
    assert not conn.closed.is_set()
    # A race starts every node at once: c is under way although b has won (its worker may
    # only now be running it, hence the wait), and nothing was released that could start it.
    deadline = time.monotonic() + 5
    while set(attempts.started) != set(NODES) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert set(attempts.started) == set(NODES)

    release.set()
    settle(cluster)
    losers = [c for c in attempts.made if c is not conn]
    assert len(losers) == 2
    assert all(c.closed.wait(5) for c in losers)
    assert totals(cluster) == {"connects": 3, "errors": 0, "discarded": 2, "pending": 0}


def test_hedge_starts_the_next_node_only_after_the_delay(release: threading.Event) -> None:
    delay = 0.5
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=ok(), c=ok())
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(run(cluster, attempts, delay=delay)))
    thread.start()
    time.sleep(delay / 10)
    assert set(attempts.started) == {"a"}  # b waits for a's hedge delay
    thread.join(10)

    conn = result[0]
    assert conn.node == "b"
    assert "c" not in attempts.started  # b answered within its own delay
    assert attempts.started["b"] - attempts.started["a"] >= delay / 2
    # The silent node is ranked down at once: its estimate is at least the time it was given.
    a_stats = cluster.stats_snapshot().node("a")
    assert a_stats.latency_ms is not None and a_stats.latency_ms >= delay / 2 * 1000
    assert a_stats.pending == 1

    release.set()
    settle(cluster)
    assert attempts.made[-1].node == "a" and attempts.made[-1].closed.wait(5)
    assert totals(cluster) == {"connects": 2, "errors": 0, "discarded": 1, "pending": 0}


def test_failure_starts_the_next_node_at_once() -> None:
    delay = 5.0
    cluster = make_cluster()
    attempts = Attempts(a=fail(), b=fail(), c=ok())
    started = time.monotonic()
    conn = run(cluster, attempts, delay=delay)
    assert time.monotonic() - started < delay / 10
    assert conn.node == "c"
    settle(cluster)
    stats = cluster.stats_snapshot()
    assert [(n.name, n.state, n.connect_errors) for n in stats.nodes] == [
        ("a", "down", 1),
        ("b", "down", 1),
        ("c", "up", 0),
    ]
    assert stats.node("a").last_error == "OperationalError: a: refused"


def test_deadline_bounds_the_race_and_names_every_silent_node(release: threading.Event) -> None:
    timeout = 0.3
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=hang(release), c=hang(release))
    started = time.monotonic()
    with pytest.raises(AllNodesFailed) as info:
        run(cluster, attempts, race_all=True, timeout=timeout)
    elapsed = time.monotonic() - started
    assert timeout <= elapsed < timeout * 10

    error = info.value
    assert isinstance(error, sqlite3.OperationalError)  # the driver's own class catches it
    assert isinstance(error, Error)
    assert list(error.errors) == list(NODES)
    for node in NODES:
        assert f"{node}: no answer within 0.3 s (connect_timeout)" in str(error)
        assert isinstance(error.errors[node], sqlite3.OperationalError)

    # Successes arriving after the deadline are closed by their own threads, and counted.
    release.set()
    settle(cluster)
    assert len(attempts.made) == 3
    assert all(c.closed.wait(5) for c in attempts.made)
    assert totals(cluster) == {"connects": 3, "errors": 0, "discarded": 3, "pending": 0}


def test_deadline_reached_while_hedging_still_tries_every_node(release: threading.Event) -> None:
    cluster = make_cluster()
    attempts = Attempts(a=hang(release), b=hang(release), c=fail())
    with pytest.raises(AllNodesFailed) as info:
        run(cluster, attempts, delay=0.05, timeout=0.5)
    assert set(attempts.started) == set(NODES)
    lines = str(info.value).splitlines()
    assert lines[0] == "cluster 'racer': all 3 nodes tried failed:"
    assert lines[1:] == [
        "  a: no answer within 0.5 s (connect_timeout)",
        "  b: no answer within 0.5 s (connect_timeout)",
        "  c: OperationalError: c: refused",
    ]
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)  # the last real failure


def test_every_node_failing_fast_raises_at_once() -> None:
    cluster = make_cluster()
    attempts = Attempts(a=fail(), b=fail(), c=fail())
    started = time.monotonic()
    with pytest.raises(AllNodesFailed) as info:
        run(cluster, attempts, delay=5.0, timeout=5.0)
    assert time.monotonic() - started < 0.5
    assert sorted(info.value.errors) == list(NODES)
    settle(cluster)
    assert totals(cluster) == {"connects": 0, "errors": 3, "discarded": 0, "pending": 0}


def test_wrong_role_is_closed_counted_and_the_next_node_tried() -> None:
    cluster = make_cluster(adapter=RoleAdapter(sqlite3))
    attempts = Attempts(a=ok(role="replica"), b=ok(role="primary"), c=ok(role="replica"))
    conn = run(cluster, attempts, delay=5.0, wanted="primary")
    assert conn.node == "b"
    settle(cluster)
    stats = cluster.stats_snapshot()
    assert (stats.node("a").role, stats.node("a").discarded) == ("replica", 1)
    assert stats.node("b").role == "primary"
    assert attempts.made[0].closed.is_set() and not conn.closed.is_set()


def test_secret_in_a_driver_message_does_not_reach_the_error() -> None:
    secret = "hunter2-canary"
    cluster = make_cluster(password=secret)
    attempts = Attempts(a=fail(message=f"bad password {secret}"), b=fail(), c=fail())
    with pytest.raises(AllNodesFailed) as info:
        run(cluster, attempts, delay=5.0)
    error = info.value
    texts = [str(error), repr(error), *(f"{e} {e!r}" for e in error.errors.values())]
    assert all(secret not in text for text in texts)
    assert isinstance(error.errors["a"], sqlite3.OperationalError)
    assert secret not in (cluster.stats_snapshot().node("a").last_error or "")


def test_many_concurrent_races_leave_exact_totals(release: threading.Event) -> None:
    cluster = make_cluster()
    attempts = Attempts(a=ok(0.002), b=ok(0.001), c=fail(0.001))
    workers, rounds = 16, 10
    barrier = threading.Barrier(workers)

    def worker() -> None:
        barrier.wait()
        for _ in range(rounds):
            run(cluster, attempts, race_all=True).close()

    in_threads(worker, workers, timeout=30)
    settle(cluster)
    calls = workers * rounds
    assert totals(cluster) == {
        "connects": 2 * calls,
        "errors": calls,
        "discarded": calls,
        "pending": 0,
    }
