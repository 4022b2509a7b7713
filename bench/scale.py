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
            before = clusterdb.stats.snapshot(name).connects
            xs, rate = _hammer(threads, c.s_seconds, clusterdb_op)
            settle(name)
            returned = clusterdb.stats.snapshot(name).connects - before
            exact = "exact" if returned == len(xs) else f"MISMATCH: stats {returned}"
            result.add(
                f"clusterdb, {threads} thread{'s' if threads > 1 else ''}",
                "ms",
                xs,
                f"p99 {_p99(xs):.2f} ms; stats count {exact}",
                cycles_per_s=rate,
            )
            ys, vrate = _hammer(threads, c.s_seconds, vendor_op)
            result.add(
                f"{driver} alone, {threads} thread{'s' if threads > 1 else ''}",
                "ms",
                ys,
                f"p99 {_p99(ys):.2f} ms; node {best.name}",
                cycles_per_s=vrate,
            )
            log(f"{result.title}: {threads} threads {rate:.0f}/s (vendor {vrate:.0f}/s)")
    return result


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


def run_selection(ctx: Ctx) -> ScenarioResult:
    """Microseconds per ``selection.plan()`` call on 3, 30 and 300 nodes (role "any")."""
    from clusterdb.core import selection

    c = ctx.counts
    result = ScenarioResult(
        key="selection",
        title="5. selection.plan() per call",
        path="none (pure function)",
        settings={"sizes": c.sel_sizes, "repeats": c.sel_repeats, "block_s": c.sel_block},
    )
    for n in c.sel_sizes:
        desc = description(n)
        rng = random.Random(7)
        # Calls per block sized from a trial run, so every block lasts about sel_block seconds.
        t0 = time.perf_counter()
        calls = 0
        while time.perf_counter() - t0 < 0.02:
            selection.plan(desc, "any", rng=rng)
            calls += 1
        per_block = max(1, int(calls * c.sel_block / 0.02))
        samples = []
        for _ in range(c.sel_repeats):
            t0 = time.perf_counter()
            for _ in range(per_block):
                selection.plan(desc, "any", rng=rng)
            samples.append((time.perf_counter() - t0) * 1e6 / per_block)
        result.add(f"{n} nodes", "us", samples, f"{per_block} calls per block")
        log(f"{result.title}: {n} nodes {median(samples):.1f} µs")
    return result
