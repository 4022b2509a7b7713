"""The asyncio racer with stand-in attempts (tests/unit/async_fakes.py): winning, hedging,
failing over, the deadline, roles, prefer-replica, cancellation, several loops.

Timing bounds stay 10x clear of scheduling noise: "at once" is under a tenth of the delay it
must not wait for, "waited" is over half of it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from async_fakes import FakeAsyncAdapter, InlineFakeAdapter, fail, hang, make_cluster, ok, settle
from fakes import totals

from clusterdb import drivers
from clusterdb.core.policies import HedgePolicy, SelectionPolicy
from clusterdb.core.race_course import HedgeBudget
from clusterdb.errors import AllNodesFailed, InterfaceError, NoSuitableNode
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect_async import connect_async


@pytest.fixture(autouse=True)
def fake_driver() -> Iterator[None]:
    """connect_async() finds the adapter a test installs (the driver named "fake")."""
    yield
    drivers._async_cache.pop("fake", None)


async def connect(
    cluster: Cluster, adapter: FakeAsyncAdapter, role: Any = "any", **overrides: Any
) -> Any:
    drivers._async_cache["fake"] = adapter
    return await connect_async(cluster, role, overrides)


async def learnt(adapter: FakeAsyncAdapter, **options: Any) -> Cluster:
    """A cluster whose nodes ``adapter`` has connected to often enough to rank them (no
    trials: plans are best-first, the fastest node alone ahead)."""
    cluster = make_cluster(selection=SelectionPolicy(trial_weight=0), **options)
    for _ in range(10):
        (await connect(cluster, adapter)).closed = True
    await settle(cluster)
    return cluster


def test_a_race_takes_the_first_answer_and_closes_the_late_ones() -> None:
    async def main() -> None:
        cluster = make_cluster()
        adapter = FakeAsyncAdapter(a=ok(0.05), b=ok(), c=ok(0.05))
        conn = await connect(cluster, adapter)
        assert conn.node == "b" and not conn.closed
        assert set(adapter.started) == {"a", "b", "c"}  # nothing known: every node at once
        await settle(cluster)
        assert [c.closed for c in adapter.made if c is not conn] == [True, True]
        assert totals(cluster) == {"connects": 3, "errors": 0, "discarded": 2, "pending": 0}
        assert cluster.stats_snapshot().connects == 1

    asyncio.run(main())


def test_best_first_hedges_after_the_delay_on_a_loop_timer() -> None:
    async def main() -> None:
        adapter = FakeAsyncAdapter(a=ok(), b=ok(0.03), c=ok(0.03))
        cluster = await learnt(adapter)
        release = asyncio.Event()
        adapter.behaviours["a"] = hang(release)
        adapter.started.clear()
        began = asyncio.get_running_loop().time()
        conn = await connect(cluster, adapter)
        assert conn.node in ("b", "c")
        hedged_after = adapter.started[conn.node] - began
        assert 0.005 < hedged_after < 1.0  # the hedge delay (min_delay 10 ms), not a timeout
        silent = cluster.stats_snapshot().node("a")
        assert silent.latency_ms is not None and silent.latency_ms >= hedged_after * 1000 / 2
        release.set()
        await settle(cluster)
        assert totals(cluster)["pending"] == 0

    asyncio.run(main())


def test_a_failure_starts_the_next_node_at_once() -> None:
    async def main() -> None:
        cluster = make_cluster(
            hedge=HedgePolicy(min_delay=2.0, max_delay=2.0),
            selection=SelectionPolicy(trial_weight=0),
        )
        adapter = FakeAsyncAdapter(a=ok(), b=ok(), c=ok(0.03))
        for _ in range(10):  # learn the nodes: c ranked last
            (await connect(cluster, adapter)).closed = True
        await settle(cluster)
        adapter.behaviours = {"a": fail(), "b": fail(), "c": ok()}
        started = time.monotonic()
        conn = await connect(cluster, adapter)
        assert time.monotonic() - started < 0.2  # never waited for a 2 s hedge delay
        assert conn.node == "c"
        assert {n.name: n.state for n in cluster.stats_snapshot().nodes} == {
            "a": "down",
            "b": "down",
            "c": "up",
        }

    asyncio.run(main())


def test_the_deadline_ends_it_and_every_attempt_records_its_failure() -> None:
    async def main() -> None:
        cluster = make_cluster()
        adapter = FakeAsyncAdapter(a=hang(), b=hang(), c=fail())
        started = time.monotonic()
        with pytest.raises(AllNodesFailed) as info:
            await connect(cluster, adapter, connect_timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 3.0
        error = info.value
        assert isinstance(error, sqlite3.OperationalError)  # the driver's own class
        assert str(error).splitlines()[1:] == [
            "  a: no answer within 0.3 s (connect_timeout)",
            "  b: no answer within 0.3 s (connect_timeout)",
            "  c: OperationalError: c: refused",
        ]
        await settle(cluster)
        assert totals(cluster) == {"connects": 0, "errors": 3, "discarded": 0, "pending": 0}
        assert [n.state for n in cluster.stats_snapshot().nodes] == ["down"] * 3
        assert cluster.stats_snapshot().failures == 1

    asyncio.run(main())


def test_a_cancelled_connect_cancels_its_attempts_and_leaves_nothing() -> None:
    async def main() -> None:
        cluster = make_cluster()
        release = asyncio.Event()
        adapter = FakeAsyncAdapter(a=hang(), b=hang(), c=hang(release))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connect(cluster, adapter), 0.1)
        assert time.monotonic() - started < 1.0
        assert sorted(adapter.cancelled) == ["a", "b", "c"]
        assert asyncio.all_tasks() == {asyncio.current_task()}  # no attempt left running
        release.set()
        await asyncio.sleep(0.01)
        assert adapter.made == []  # c never connected: it was cancelled, not released
        stats = cluster.stats_snapshot()
        assert totals(cluster) == {"connects": 0, "errors": 0, "discarded": 0, "pending": 0}
        assert (stats.connects, stats.failures) == (0, 1)
        assert [n.state for n in stats.nodes] == ["unknown"] * 3  # not the nodes' failure

    asyncio.run(main())


def test_cancelled_after_an_attempt_connected_closes_that_connection() -> None:
    async def main() -> None:
        cluster = make_cluster()
        adapter = FakeAsyncAdapter(role_is_free=False, a=ok(), b=hang(), c=hang())
        gate = asyncio.Event()

        async def slow_role(conn: Any) -> Any:
            await gate.wait()  # the role query hangs: the caller gives up meanwhile
            return "primary"

        adapter.detect_role = slow_role  # type: ignore[method-assign]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connect(cluster, adapter, role="primary"), 0.1)
        assert [c.closed for c in adapter.made] == [True]
        assert totals(cluster)["pending"] == 0

    asyncio.run(main())


def test_a_wrong_role_is_closed_counted_discarded_and_the_next_node_tried() -> None:
    async def main() -> None:
        cluster = make_cluster()
        adapter = FakeAsyncAdapter(
            a=ok(role="replica"), b=ok(0.02, role="primary"), c=ok(0.04, role="replica")
        )
        conn = await connect(cluster, adapter, role="primary")
        assert conn.node == "b"
        await settle(cluster)
        assert totals(cluster) == {"connects": 3, "errors": 0, "discarded": 2, "pending": 0}
        assert {n.name: n.role for n in cluster.stats_snapshot().nodes} == {
            "a": "replica",
            "b": "primary",
            "c": "replica",
        }
        cluster.drain("b")  # the roles are known now: no other node can be a primary
        with pytest.raises(NoSuitableNode):
            await connect(cluster, adapter, role="primary")

    asyncio.run(main())


def test_no_suitable_node_is_raised_before_any_attempt() -> None:
    async def main() -> None:
        cluster = make_cluster()
        for node in ("a", "b", "c"):
            cluster.drain(node)
        adapter = FakeAsyncAdapter(a=ok(), b=ok(), c=ok())
        with pytest.raises(NoSuitableNode) as info:
            await connect(cluster, adapter)
        assert isinstance(info.value, sqlite3.OperationalError)
        assert adapter.started == {}
        assert cluster.stats_snapshot().failures == 1

    asyncio.run(main())


def test_prefer_replica_holds_a_primary_while_a_replica_may_answer() -> None:
    async def main() -> None:
        cluster = make_cluster(hedge=HedgePolicy(max_delay=0.5))
        adapter = FakeAsyncAdapter(a=ok(role="primary"), b=ok(0.05, role="replica"), c=fail())
        conn = await connect(cluster, adapter, role="prefer-replica")
        assert conn.node == "b"
        await settle(cluster)
        primary = next(c for c in adapter.made if c.node == "a")
        assert primary.closed
        assert totals(cluster) == {"connects": 2, "errors": 1, "discarded": 1, "pending": 0}

        adapter.behaviours = {"a": ok(role="primary"), "b": fail(0.01), "c": fail(0.01)}
        started = time.monotonic()
        conn = await connect(cluster, adapter, role="prefer-replica")
        assert conn.node == "a" and not conn.closed  # nothing left to beat it: used at once
        assert time.monotonic() - started < 0.25

    asyncio.run(main())


def test_a_hung_replica_delays_the_primary_by_at_most_the_wait() -> None:
    async def main() -> None:
        cluster = make_cluster(hedge=HedgePolicy(max_delay=0.3))
        adapter = FakeAsyncAdapter(a=ok(role="primary"), b=hang(), c=fail())
        started = time.monotonic()
        conn = await connect(cluster, adapter, role="prefer-replica", connect_timeout=30)
        assert conn.node == "a"
        assert 0.15 <= time.monotonic() - started < 3.0

    asyncio.run(main())


def test_a_generic_driver_has_no_asyncio_counterpart() -> None:
    from clusterdb.runtime import process

    process.register(
        __import__("clusterdb.config", fromlist=["x"]).cluster_from_kwargs(
            "sqlite-async", "sqlite3", [":memory:"], {"monitor": False}
        )
    )
    try:
        cluster = process.get("sqlite-async")
        with pytest.raises(InterfaceError, match="connect_async"):
            asyncio.run(connect_async(cluster, "any", {}))
        assert totals(cluster)["pending"] == 0
    finally:
        process.unregister("sqlite-async")


def test_several_loops_in_several_threads_share_one_cluster() -> None:
    cluster = make_cluster()
    adapter = FakeAsyncAdapter(a=ok(0.001), b=ok(0.002), c=ok(0.003))
    drivers._async_cache["fake"] = adapter
    errors: list[BaseException] = []

    def worker() -> None:
        async def main() -> None:
            conns = await asyncio.gather(*(connect_async(cluster, "any", {}) for _ in range(50)))
            for conn in conns:
                conn.closed = True
            await settle(cluster)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    stats = cluster.stats_snapshot()
    assert (stats.connects, stats.failures) == (200, 0)
    served = totals(cluster)
    assert served["connects"] - served["discarded"] == 200
    assert served["pending"] == 0


def test_a_known_node_answering_in_time_wins_in_the_callers_task() -> None:
    async def main() -> None:
        adapter = InlineFakeAdapter(a=ok(), b=ok(0.03), c=ok(0.03))
        cluster = await learnt(adapter)
        adapter.inline.clear()
        clusterdb_tasks = {t for t in asyncio.all_tasks() if t.get_name().startswith("clusterdb")}
        assert clusterdb_tasks == set()
        conn = await connect(cluster, adapter)
        assert conn.node == "a" and adapter.inline == ["a"]
        stats = cluster.stats_snapshot()  # counted, although queued without a lock
        assert (stats.connects, totals(cluster)["pending"]) == (11, 0)

    asyncio.run(main())


def test_a_silent_first_node_is_handed_to_a_task_and_hedged() -> None:
    async def main() -> None:
        adapter = InlineFakeAdapter(a=ok(), b=ok(0.03), c=ok(0.03))
        cluster = await learnt(adapter)
        release = asyncio.Event()
        adapter.behaviours["a"] = hang(release)
        conn = await connect(cluster, adapter)
        assert conn.node in ("b", "c")
        release.set()  # a's attempt, finished by its task, connects late: closed, counted
        await settle(cluster)
        late = [c for c in adapter.made if c.node == "a"][-1]
        assert late.closed
        assert totals(cluster)["pending"] == 0
        assert cluster.stats_snapshot().node("a").discarded >= 1

    asyncio.run(main())


def test_cancelled_while_the_first_attempt_runs_in_the_callers_task() -> None:
    async def main() -> None:
        adapter = InlineFakeAdapter(a=ok(), b=ok(0.03), c=ok(0.03))
        cluster = await learnt(adapter)
        for node in ("a", "b", "c"):
            adapter.behaviours[node] = hang()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connect(cluster, adapter), 0.005)  # within a's patience
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert totals(cluster)["pending"] == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(connect(cluster, adapter), 0.1)  # after a was handed over
        await asyncio.sleep(0)
        assert asyncio.all_tasks() == {asyncio.current_task()}
        assert totals(cluster)["pending"] == 0
        assert cluster.stats_snapshot().failures == 2

    asyncio.run(main())


def _spare(cluster: Cluster) -> int:
    """Attempts made on the nodes other than ``a``."""
    return sum(
        n.connects + n.connect_errors for n in cluster.stats_snapshot().nodes if n.name != "a"
    )


async def _burst(budget: HedgeBudget) -> tuple[list[Any], int, int]:
    """40 connect_async at once while every node is slow (the fastest silent for 0.3 s, the
    others 1 s): the connections, the spare attempts made, the hedges left counted."""
    adapter = FakeAsyncAdapter(a=ok(), b=ok(0.004), c=ok(0.004))
    cluster = await learnt(adapter)
    cluster.hedges.budget = budget
    learning = _spare(cluster)
    release = asyncio.Event()
    adapter.behaviours = {"a": hang(release), "b": ok(1.0), "c": ok(1.0)}
    asyncio.get_running_loop().call_later(0.3, release.set)
    conns = await asyncio.gather(*(connect(cluster, adapter) for _ in range(40)))
    await settle(cluster)
    return conns, _spare(cluster) - learning, cluster.hedges.hedging


def test_a_burst_of_slow_connects_hedges_within_the_budget() -> None:
    """The hedge budget (2 + 0.1 x 40 = 6 connects hedging at once) keeps a burst's spare
    attempts to a few; with no budget every connect hedges (40, or 80 with the third node)."""
    conns, spare, hedging = asyncio.run(_burst(HedgeBudget()))
    assert len(conns) == 40 and sum(c.node == "a" for c in conns) >= 28
    assert hedging == 0  # every race gave its hedges back
    assert 1 <= spare <= 24  # 6 connects hedging (to b, then c) at a time, not 40
    conns, spare, hedging = asyncio.run(_burst(HedgeBudget(minimum=1000.0)))
    assert len(conns) == 40 and hedging == 0
    assert spare >= 40
