"""Scenario 1: the cost of one ``SELECT 1`` through a clusterdb connection and a vendor one.

clusterdb returns the driver's own connection, so the two should be the same thing; what is
measured is that nothing (a wrapper, a hook) sits in the query path. Every connection reaches
the same node on its direct port; contenders run interleaved blocks, so machine drift hits all
alike, and each uses several connections in turn, since one server backend can be a few
percent faster than another for reasons of its own (where it was scheduled). A second set of
vendor connections is measured the same way as a control: its ratio to the first is the noise
floor of the comparison on this machine at this moment.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log
from bench.model import ScenarioResult
from bench.stats import interleave, median, ratio

__all__ = ["run_per_query"]

GOAL = 1.01
CONTROL = "control: 2nd vendor connection"


def _block(cur: Any, n: int) -> float:
    """Microseconds per query over ``n`` queries on one cursor."""
    # The collector would land in one contender's block or the other's at random.
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            cur.execute("SELECT 1")
            cur.fetchone()
        return (time.perf_counter() - t0) * 1e6 / n
    finally:
        gc.enable()


def _clusterdb_conns(name: str, sql: str, k: int) -> tuple[str, list[Any]]:
    """``k`` clusterdb connections that landed on one node (others are closed), and the node."""
    by_node: dict[str, list[Any]] = {}
    try:
        for _ in range(20 * k):
            conn = clusterdb.connect(name)
            node = peers.whoami(conn, sql)
            by_node.setdefault(node, []).append(conn)
            if len(by_node[node]) == k:
                return node, by_node.pop(node)
        raise RuntimeError(f"no {k} of {20 * k} clusterdb connections landed on one node")
    finally:
        for conns in by_node.values():
            for conn in conns:
                peers.close_quietly(conn)


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
    conns: dict[str, list[Any]] = {}
    name = f"bench-query-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        try:
            node_name, conns["clusterdb"] = _clusterdb_conns(name, cl.WHOAMI_SQL, c.q_conns)
            node = cl.node(node_name)
            kwargs = ctx.node_kwargs(driver, node, via_proxy=False, settings=settings)
            for who in (driver, CONTROL):
                conns[who] = [peers.vendor_connect(driver, kwargs) for _ in range(c.q_conns)]
            if driver == "psycopg" and ctx.aws:
                conns["aws-wrapper"] = [peers.aws_connect(kwargs) for _ in range(c.q_conns)]
            result.notes.append(
                f"{c.q_conns} connections per contender, all on node {node.name} (direct "
                "port), used in turn: one server backend's luck does not decide"
            )
            cursors = {who: [conn.cursor() for conn in cs] for who, cs in conns.items()}
            for curs in cursors.values():
                for cur in curs:
                    _block(cur, c.q_block)  # warm-up: prepared paths, caches, server backend
            samples: dict[str, list[float]] = {who: [] for who in conns}
            for i, who in enumerate(interleave(list(conns), c.q_rounds)):
                cur = cursors[who][(i // len(conns)) % c.q_conns]
                samples[who].append(_block(cur, c.q_block))
        finally:
            for cs in conns.values():
                for conn in cs:
                    peers.close_quietly(conn)
    vendor = median(samples[driver])
    for who, xs in samples.items():
        note = "" if who == driver else f"{ratio(median(xs), vendor):.3f}x {driver}"
        result.add(who if who != CONTROL else f"{driver} (A/A control)", "us", xs, note)
    r = ratio(median(samples["clusterdb"]), vendor)
    noise = abs(ratio(median(samples[CONTROL]), vendor) - 1.0)
    result.notes.append(
        f"noise floor: identical {driver} connections differ by {noise:.1%} (A/A control)"
    )
    result.goal(f"per-query time, clusterdb / {driver} (same node)", r, GOAL, "<=")
    log(f"{result.title}: clusterdb/{driver} = {r:.3f}, A/A control off by {noise:.1%}")
    return result
