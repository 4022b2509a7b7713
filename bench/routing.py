"""Scenario 4: latency-weighted routing of short connect-query-close sessions.

The proxies add 0, +2 and +10 ms per chunk and direction; the fastest node is listed LAST so
clusterdb has to learn it rather than get it from the order. Contenders: clusterdb; the vendor
driver on a node chosen at random; an oracle, the vendor driver always on the fastest node.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log, node_connects, settle, warm
from bench.model import ScenarioResult
from bench.stats import interleave, mean, ratio

__all__ = ["DELAYS", "run_routing"]

DELAYS = (0.010, 0.002, 0.0)  # seconds per chunk and direction, in node order
GOAL = 1.1


def _session(connect: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    conn = connect()
    try:
        peers.select_one(conn)
    finally:
        conn.close()
    return (time.perf_counter() - t0) * 1e3


def run_routing(ctx: Ctx, driver: str, seed: int = 20240501) -> ScenarioResult:
    c = ctx.counts
    cl = ctx.cluster(driver)
    nodes = cl.nodes[: len(DELAYS)]
    settings = peers.driver_settings(driver)
    result = ScenarioResult(
        key=f"routing-{driver}",
        title=f"4. routing, +10/+2/0 ms nodes ({driver})",
        path="proxy",
        settings={"rounds": c.r_rounds, "warmup": c.r_warmup, "delays_s": DELAYS, **settings},
    )
    rng = random.Random(seed)
    fastest = nodes[DELAYS.index(min(DELAYS))]
    kwargs = {n.name: ctx.node_kwargs(driver, n, via_proxy=True, settings=settings) for n in nodes}
    name = f"bench-routing-{driver}"
    try:
        for node, delay in zip(nodes, DELAYS, strict=True):
            node.proxy.set_delay(delay)
        with ctx.registered_as(name, driver, via_proxy=True, settings=settings):
            warmed = warm(name, c.r_warmup, after=peers.select_one)
            settle(name)
            before = node_connects(name)
            contenders: dict[str, Callable[[], Any]] = {
                "clusterdb": lambda: clusterdb.connect(name),
                "random node": lambda: peers.vendor_connect(driver, kwargs[rng.choice(nodes).name]),
                "oracle (fastest node)": lambda: peers.vendor_connect(driver, kwargs[fastest.name]),
            }
            samples: dict[str, list[float]] = {who: [] for who in contenders}
            for who in interleave(list(contenders), c.r_rounds):
                samples[who].append(_session(contenders[who]))
            settle(name)
            after = node_connects(name)
    finally:
        for node in nodes:
            node.proxy.set_delay(0.0)
    used = {n: after[n] - before.get(n, 0) for n in after}
    total = sum(used.values()) or 1
    share = used.get(fastest.name, 0) / total
    oracle = mean(samples["oracle (fastest node)"])
    for who, xs in samples.items():
        result.add(who, "ms", xs, f"mean {mean(xs):.2f} ms, {ratio(mean(xs), oracle):.2f}x oracle")
    result.notes.append(
        "delays "
        + ", ".join(f"{n.name} +{d * 1e3:g} ms" for n, d in zip(nodes, DELAYS, strict=True))
        + " per chunk and direction; clusterdb's server connections in the timed part: "
        + ", ".join(f"{n} {k}" for n, k in used.items())
        + f" ({share:.0%} on the fastest, {fastest.name}); warm-up {warmed} sessions"
    )
    r = ratio(mean(samples["clusterdb"]), oracle)
    result.goal(f"routing, mean session clusterdb / oracle ({driver})", r, GOAL, "<=")
    log(f"{result.title}: clusterdb/oracle {r:.3f}, {share:.0%} on fastest")
    return result
