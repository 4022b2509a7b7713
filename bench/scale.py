"""Scenario 5: connect() plus a stats snapshot from 1, 8 and 32 threads; the selection function.

Threads loop for a fixed time; each timed operation is ``clusterdb.connect()`` followed by
``clusterdb.stats.snapshot()`` (the close after it is not timed but is part of the cycle, so
throughput counts whole cycles). The vendor driver on one node runs the same loop, without a
snapshot, as context: on 2 cores the servers' own connection setup is most of the cost.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log, settle, warm
from bench.connect import best_node
from bench.model import ScenarioResult
from bench.stats import median, percentile
from clusterdb.core.description import ClusterDescription, NodeDescription

__all__ = ["description", "run_scale", "run_selection"]


def _hammer(threads: int, seconds: float, op: Callable[[], Any]) -> tuple[list[float], float]:
    """Run ``op`` (returns a connection, closed untimed) in ``threads`` threads for ``seconds``.

    Returns the per-operation latencies in ms and the cycles per second.
    """
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    lat: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(out: list[float]) -> None:
        start.wait()
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                conn = op()
                out.append((time.perf_counter() - t0) * 1e3)
                conn.close()
        except BaseException as exc:  # reported by the caller, never lost in a thread
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(lat[i],), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join(30)
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} thread(s) failed, first: {errors[0]!r}")
    samples = [x for xs in lat for x in xs]
    return samples, len(samples) / wall


def _alternate(
    threads: int,
    seconds: float,
    blocks: int,
    ours: Callable[[], Any],
    theirs: Callable[[], Any],
    between: Callable[[], Any],
) -> tuple[list[float], list[float], float, float]:
    """``blocks`` blocks of ``seconds`` each for both contenders, which one goes first
    alternating (A B, B A, ...): a single pair of 2-s blocks read anywhere from 0.83x to 1.0x
    from one run to the next on 2 cores. Each contender's latencies and its cycles per second
    over all its blocks. ``between`` runs after each block (so that attempts still pending
    from one end before the next begins)."""
    xs: list[float] = []
    ys: list[float] = []
    walls = [0.0, 0.0]
    for block in range(blocks):
        order = (0, 1) if block % 2 == 0 else (1, 0)
        for who in order:
            samples, rate = _hammer(threads, seconds, ours if who == 0 else theirs)
            (xs if who == 0 else ys).extend(samples)
            walls[who] += len(samples) / rate if rate else seconds
            between()
    return xs, ys, len(xs) / walls[0], len(ys) / walls[1]


GOAL_THREADS = 32
GOAL_THREADS_RATIO = 0.95
"""Issue 16: 32 threads connecting at once do at least 0.95x psycopg alone's cycles per s."""


def run_scale(ctx: Ctx, driver: str = "psycopg") -> ScenarioResult:
    c = ctx.counts
    settings = peers.driver_settings(driver)
    result = ScenarioResult(
        key=f"scale-{driver}",
        title=f"5. threads: connect() + snapshot ({driver})",
        path="direct",
        settings={"seconds": c.s_seconds, "threads": c.s_threads, **settings},
    )
    name = f"bench-scale-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        warm(name, 10)
        best = best_node(ctx, driver, settings, 3)
        kwargs = ctx.node_kwargs(driver, best, via_proxy=False, settings=settings)

        def clusterdb_op() -> Any:
            conn = clusterdb.connect(name)
            clusterdb.stats.snapshot(name)
            return conn

        def vendor_op() -> Any:
            return peers.vendor_connect(driver, kwargs)

        for threads in c.s_threads:
            settle(name)
            before = clusterdb.stats.snapshot(name)
            xs, ys, rate, vrate = _alternate(
                threads, c.s_seconds, c.s_blocks, clusterdb_op, vendor_op, lambda: settle(name)
            )
            settle(name)
            after = clusterdb.stats.snapshot(name)
            returned = after.connects - before.connects
            exact = "exact" if returned == len(xs) else f"MISMATCH: stats {returned}"
            opened, discarded = _opened(before, after)
            result.add(
                f"clusterdb, {threads} thread{'s' if threads > 1 else ''}",
                "ms",
                xs,
                f"p99 {_p99(xs):.2f} ms; stats count {exact}; server connections opened, "
                "and discarded: closed unused (hedges that lost)",
                cycles_per_s=rate,
                opened=opened,
                discarded=discarded,
            )
            result.add(
                f"{driver} alone, {threads} thread{'s' if threads > 1 else ''}",
                "ms",
                ys,
                f"p99 {_p99(ys):.2f} ms; node {best.name}",
                cycles_per_s=vrate,
            )
            log(f"{result.title}: {threads} threads {rate:.0f}/s (vendor {vrate:.0f}/s)")
            if threads == GOAL_THREADS:
                what = f"{threads} threads connecting, clusterdb / {driver} alone (cycles per s)"
                result.goal(what, rate / vrate, GOAL_THREADS_RATIO, ">=")
    return result


def _opened(before: Any, after: Any) -> tuple[int, int]:
    """Server connections opened between two snapshots (every attempt that connected), and
    those closed unused."""
    opened = sum(n.connects for n in after.nodes) - sum(n.connects for n in before.nodes)
    discarded = sum(n.discarded for n in after.nodes) - sum(n.discarded for n in before.nodes)
    return opened, discarded


def _p99(xs: list[float]) -> float:
    return percentile(xs, 99.0)


def description(n: int, seed: int = 1) -> ClusterDescription:
    """``n`` healthy nodes, one primary, with spread-out connect latencies of 1 to 20 ms."""
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        lat = rng.uniform(0.001, 0.020)
        nodes.append(
            NodeDescription(
                name=f"n{i}",
                address=f"10.0.{i // 250}.{i % 250}:5432",
                state="up",
                role="primary" if i == 0 else "replica",
                latency=lat,
                lag=0.0 if i else None,
            )
        )
    return ClusterDescription(name=f"bench-{n}", nodes=tuple(nodes))


GOAL_PLAN_US = {3: 5.0, 300: 50.0}
"""Issue 16: planning a connect over 3 and 300 nodes, in microseconds."""


def run_selection(ctx: Ctx) -> ScenarioResult:
    """Microseconds per plan on 3, 30 and 300 nodes (role "any"), two ways.

    * **per connect** (the goals): what ``Cluster.begin()`` computes for a connect while the
      cluster's kept ranking holds, its steady state: the kept ranking looked up
      (``RankingCache.get``) and a plan drawn from it (``Ranking.draw``);
    * **anew**: ``selection.plan()`` from a description, every step, as on the first connect
      after a change (a node's state, role, lag, drain, an estimate leaving its band) and at
      most once per second (the kept ranking's ttl) otherwise.
    """
    c = ctx.counts
    result = ScenarioResult(
        key="selection",
        title="5. selection: planning a connect",
        path="none (pure functions)",
        settings={"sizes": c.sel_sizes, "repeats": c.sel_repeats, "block_s": c.sel_block},
    )
    for n in c.sel_sizes:
        per_connect, anew = _plan_ops(n)
        for label, op in ((f"per connect, {n} nodes", per_connect), (f"anew, {n} nodes", anew)):
            samples, per_block = _time_blocks(op, c.sel_repeats, c.sel_block)
            result.add(label, "us", samples, f"{per_block} calls per block")
            log(f"{result.title}: {label} {median(samples):.1f} µs")
            if label.startswith("per connect") and n in GOAL_PLAN_US:
                what = f"plan per connect (ranking kept), {n} nodes"
                result.goal(what, median(samples), GOAL_PLAN_US[n], "<=", "us")
    return result


def _plan_ops(n: int) -> tuple[Callable[[], object], Callable[[], object]]:
    """The two ways of planning over ``n`` nodes that :func:`run_selection` times."""
    from clusterdb.core import selection
    from clusterdb.core.ranking_cache import RankingCache

    desc = description(n)
    rng = random.Random(7)
    cache = RankingCache()
    cache.store("any", selection.rank(desc), desc, 0.0)

    def per_connect() -> object:
        kept = cache.get("any", 0.5)
        assert kept is not None
        return cache.reuse("any", kept).draw(rng)

    def anew() -> object:
        return selection.plan(desc, "any", rng=rng)

    return per_connect, anew


def _time_blocks(op: Callable[[], object], repeats: int, block: float) -> tuple[list[float], int]:
    """µs per call of ``op`` in ``repeats`` blocks of about ``block`` seconds each (calls per
    block sized from a trial run)."""
    t0 = time.perf_counter()
    calls = 0
    while time.perf_counter() - t0 < 0.02:
        op()
        calls += 1
    per_block = max(1, int(calls * block / 0.02))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(per_block):
            op()
        samples.append((time.perf_counter() - t0) * 1e6 / per_block)
    return samples, per_block
