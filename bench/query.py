"""Scenario 1: the cost of one ``SELECT 1`` through a clusterdb connection and a vendor one.

clusterdb returns the driver's own connection, so the two should be the same thing; what is
measured is that nothing (a wrapper, a hook) sits in the query path. Each contender uses
several connections in turn, on direct ports, since one server backend can be a few percent
faster than another for reasons of its own (where it was scheduled). They are made side by
side (one of each contender, in an order that rotates), because a set made first read up to
1 % slower than one made after it (measured with three sets of vendor connections alone), and
in each round every contender queries the same node: the one clusterdb's connection of that
round landed on.

Contenders run short interleaved blocks, and the goal compares each clusterdb block with the
vendor block of the same round, then takes the median of those ratios: the machine's drift
(here up to 10 % over seconds) cancels within each pair instead of widening both contenders'
spreads. Measured with vendor connections on both sides, this reads within 0.6 % of 1.0
where the ratio of the two medians read up to 1.0 % off, and up to 5 % off with the sets
made one after the other. A second set of vendor connections is measured the same way as a
control: its ratio to the first is the noise floor of the comparison at that moment.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log
from bench.model import ScenarioResult
from bench.stats import interleave, median, paired_ratio

__all__ = ["run_per_query"]

GOAL = 1.01
CONTROL = "control: 2nd vendor connection"
COLLECT_EVERY = 64  # rounds between two collections of the garbage collector, untimed


def _block(cur: Any, n: int) -> float:
    """Microseconds per query over ``n`` queries on one cursor."""
    t0 = time.perf_counter()
    for _ in range(n):
        cur.execute("SELECT 1")
        cur.fetchone()
    return (time.perf_counter() - t0) * 1e6 / n


def _side_by_side(
    name: str, sql: str, k: int, nodes: list[str], others: dict[str, Callable[[str], Any]]
) -> tuple[list[str], dict[str, list[Any]]]:
    """``k`` connections per contender, made side by side: one of each contender, then again,
    in an order that rotates. The i-th connection of every contender reaches the node that
    clusterdb's i-th landed on (``others``: a connect function of a node's name); a contender
    whose turn comes before clusterdb's connects to every node of ``nodes`` and keeps the one
    it needs. Returns the nodes, by index, and the connections."""
    order = interleave(["clusterdb", *others], k)
    conns: dict[str, list[Any]] = {"clusterdb": [], **{who: [] for who in others}}
    spare: list[Any] = []
    landed: list[str] = []
    try:
        for i in range(k):
            turn = order[i * len(conns) : (i + 1) * len(conns)]
            first = turn[: turn.index("clusterdb")]
            early = {who: {node: others[who](node) for node in nodes} for who in first}
            for made in early.values():
                spare.extend(made.values())
            conn = clusterdb.connect(name)
            conns["clusterdb"].append(conn)
            landed.append(peers.whoami(conn, sql))
            for who in turn[turn.index("clusterdb") + 1 :]:
                conns[who].append(others[who](landed[-1]))
            for who, made in early.items():
                conns[who].append(made[landed[-1]])
                spare.remove(made[landed[-1]])
            for conn in spare:
                peers.close_quietly(conn)
            spare.clear()
    except BaseException:
        for conn in [*spare, *(c for cs in conns.values() for c in cs)]:
            peers.close_quietly(conn)
        raise
    return landed, conns


def run_per_query(ctx: Ctx, driver: str) -> ScenarioResult:
    c = ctx.counts
    cl = ctx.cluster(driver)
    settings = peers.driver_settings(driver)
    result = ScenarioResult(
        key=f"query-{driver}",
        title=f"1. per-query SELECT 1 ({driver})",
        path="direct",
        settings={"block": c.q_block, "rounds": c.q_rounds, "conns": c.q_conns, **settings},
    )

    def vendor(node: str) -> Any:
        kwargs = ctx.node_kwargs(driver, cl.node(node), via_proxy=False, settings=settings)
        return peers.vendor_connect(driver, kwargs)

    def aws(node: str) -> Any:
        kwargs = ctx.node_kwargs(driver, cl.node(node), via_proxy=False, settings=settings)
        return peers.aws_connect(kwargs)

    others: dict[str, Callable[[str], Any]] = {driver: vendor, CONTROL: vendor}
    if driver == "psycopg" and ctx.aws:
        others["aws-wrapper"] = aws
    name = f"bench-query-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        nodes = [node.name for node in cl.nodes]
        landed, conns = _side_by_side(name, cl.WHOAMI_SQL, c.q_conns, nodes, others)
        try:
            mix = ", ".join(f"{n} {landed.count(n)}" for n in nodes if n in landed)
            result.notes.append(
                f"{c.q_conns} connections per contender (direct ports), made side by side and "
                "used in turn: one server backend's luck does not decide; the i-th of each "
                f"is on the node clusterdb's i-th landed on ({mix}), so a round's blocks all "
                "query one node"
            )
            cursors = {who: [conn.cursor() for conn in cs] for who, cs in conns.items()}
            for curs in cursors.values():
                for cur in curs:
                    _block(cur, c.q_block)  # warm-up: prepared paths, caches, server backend
            samples: dict[str, list[float]] = {who: [] for who in conns}
            # The collector would land in one contender's block or another's at random.
            gc.disable()
            try:
                for i, who in enumerate(interleave(list(conns), c.q_rounds)):
                    turn = i // len(conns)
                    if i % len(conns) == 0 and turn % COLLECT_EVERY == 0:
                        gc.collect()
                    samples[who].append(_block(cursors[who][turn % c.q_conns], c.q_block))
            finally:
                gc.enable()
        finally:
            for cs in conns.values():
                for conn in cs:
                    peers.close_quietly(conn)
    base = samples[driver]
    for who, xs in samples.items():
        note = "" if who == driver else f"{paired_ratio(xs, base):.3f}x {driver}, paired"
        result.add(who if who != CONTROL else f"{driver} (A/A control)", "us", xs, note)
    r = paired_ratio(samples["clusterdb"], base)
    noise = abs(paired_ratio(samples[CONTROL], base) - 1.0)
    result.notes.append(
        f"ratios are medians of per-round ratios to {driver}'s block of the same round "
        f"({c.q_rounds} rounds of {c.q_block} queries); the ratio of the medians is "
        f"{median(samples['clusterdb']) / median(base):.3f}"
    )
    result.notes.append(
        f"noise floor: identical {driver} connections differ by {noise:.1%} (A/A control)"
    )
    result.goal(f"per-query time, clusterdb / {driver} (same node)", r, GOAL, "<=")
    log(f"{result.title}: clusterdb/{driver} = {r:.3f}, A/A control off by {noise:.1%}")
    return result
