"""Scenario 2: a healthy connect, clusterdb against the vendor driver on the best node.

Direct server ports on both sides. The vendor driver connects to every node, interleaved with
clusterdb, and the "best node" is the one where its median is lowest: the vendor's best case.
After a warm-up, clusterdb's counters are reset, and every server connection it opens during
the timed connects is counted: once latencies are known it should open about one per
``connect()`` (hedging, not racing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import clusterdb
from bench import peers
from bench.clusterhost import RemoteNode
from bench.common import Ctx, log, settle, warm
from bench.model import ScenarioResult
from bench.stats import interleave, median, ratio

__all__ = ["best_node", "run_healthy_connect"]

GOAL_RATIO = 1.10
GOAL_OPENED = 1.05


def best_node(ctx: Ctx, driver: str, settings: dict[str, Any], tries: int) -> RemoteNode:
    """The node the vendor driver reaches fastest on its direct port (median of ``tries``)."""
    cl = ctx.cluster(driver)
    times: dict[str, list[float]] = {n.name: [] for n in cl.nodes}
    for node in interleave(list(cl.nodes), tries):
        kwargs = ctx.node_kwargs(driver, node, via_proxy=False, settings=settings)
        dt, conn = peers.timed(functools.partial(peers.vendor_connect, driver, kwargs))
        conn.close()
        times[node.name].append(dt)
    return cl.node(min(times, key=lambda n: median(times[n])))


def run_healthy_connect(ctx: Ctx, driver: str, *, cpus_sleep: bool = False) -> ScenarioResult:
    """``cpus_sleep``: the variant run with idle CPUs allowed to halt (see :mod:`bench.idle`)."""
    c = ctx.counts
    cl = ctx.cluster(driver)
    settings = peers.driver_settings(driver)
    cond = ", CPUs may sleep" if cpus_sleep else ""
    result = ScenarioResult(
        key=f"connect-{driver}" + ("-cpus-sleep" if cpus_sleep else ""),
        title=f"2{'b' if cpus_sleep else ''}. healthy connect{cond} ({driver})",
        path="direct",
        settings={"rounds": c.c_rounds, "warmup": c.c_warmup, **settings},
    )
    name = f"bench-connect-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        warm(name, c.c_warmup)
        # The vendor driver runs against every node, interleaved with clusterdb; the best node
        # is then the one with the lowest median: the vendor's best case, known only afterwards.
        contenders: dict[str, Callable[[], Any]] = {"clusterdb": lambda: clusterdb.connect(name)}
        for node in cl.nodes:
            kwargs = ctx.node_kwargs(driver, node, via_proxy=False, settings=settings)
            contenders[node.name] = functools.partial(peers.vendor_connect, driver, kwargs)
        aws_node: RemoteNode | None = None
        if driver == "psycopg" and ctx.aws:
            # The wrapper on the node found best beforehand, compared with psycopg on it.
            aws_node = best_node(ctx, driver, settings, c.c_best)
            kwargs = ctx.node_kwargs(driver, aws_node, via_proxy=False, settings=settings)
            contenders["aws-wrapper"] = functools.partial(peers.aws_connect, kwargs)
        settle(name)
        clusterdb.stats.reset(name)
        samples: dict[str, list[float]] = {who: [] for who in contenders}
        for who in interleave(list(contenders), c.c_rounds):
            dt, conn = peers.timed(contenders[who])
            conn.close()
            samples[who].append(dt * 1e3)
        settle(name)
        snap = clusterdb.stats.snapshot(name)
    calls = len(samples["clusterdb"])
    opened = sum(n.connects for n in snap.nodes)
    by_node = {n.name: median(samples[n.name]) for n in cl.nodes}
    best = min(by_node, key=lambda n: by_node[n])
    base = by_node[best]
    ours = median(samples["clusterdb"])
    result.add("clusterdb", "ms", samples["clusterdb"], f"{ratio(ours, base):.3f}x best node")
    for node in cl.nodes:
        tag = " (best)" if node.name == best else ""
        result.add(f"{driver} -> {node.name}{tag}", "ms", samples[node.name])
    if aws_node is not None:
        aws = median(samples["aws-wrapper"])
        result.add(
            "aws-wrapper",
            "ms",
            samples["aws-wrapper"],
            f"on {aws_node.name}: {ratio(aws, by_node[aws_node.name]):.3f}x {driver} there",
        )
    # What the vendor would have cost on clusterdb's own mix of nodes: splits clusterdb's gap
    # to the best node into node choice and clusterdb's own overhead.
    mix = {n.name: n.connects for n in snap.nodes}
    at_mix = sum(by_node[k] * v for k, v in mix.items()) / max(1, sum(mix.values()))
    result.notes.append(
        f"clusterdb opened {opened} server connections for {calls} connect() calls "
        f"({', '.join(f'{k} {v}' for k, v in mix.items())}; "
        f"discarded {sum(n.discarded for n in snap.nodes)}, "
        f"errors {sum(n.connect_errors for n in snap.nodes)}); its latency estimates after: "
        + ", ".join(f"{n.name} {n.latency_ms or 0:.1f} ms" for n in snap.nodes)
    )
    result.notes.append(
        f"gap to the best node {(ours - base) * 1e3:+.0f} µs = node choice "
        f"{(at_mix - base) * 1e3:+.0f} µs ({driver} alone on clusterdb's mix of nodes) "
        f"+ clusterdb's own overhead {(ours - at_mix) * 1e3:+.0f} µs"
    )
    r = ratio(ours, base)
    result.goal(f"healthy connect{cond}, clusterdb / {driver} to best node", r, GOAL_RATIO, "<=")
    result.goal(
        f"server connections opened per connect(){cond} ({driver})",
        opened / calls,
        GOAL_OPENED,
        "<=",
    )
    log(f"{result.title}: ratio {r:.3f}, opened/connect {opened / calls:.3f}")
    return result
