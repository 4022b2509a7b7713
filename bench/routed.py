"""Scenario 4b: the cost of connect(role="auto") per statement, and of classifying one.

A routed connection classifies each statement (a cache hit for a repeated text) and asks its
routing state where it goes before the driver runs it. Measured on the routed connection's
own replica connection, so that both contenders use the same server backend: blocks of
``SELECT 1`` (the cheapest statement: the worst case for a relative cost) through the routed
cursor and through a cursor of the driver connection under it, interleaved, compared block by
block (median of the paired ratios, as scenario 1). Classification is timed in CPU time
(``time.process_time``), best of 5 loops, cached and uncached, on the 190-byte statement of
bench/statements.py.
"""

from __future__ import annotations

import functools
import gc
import time
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log
from bench.model import ScenarioResult
from bench.statements import STATEMENTS, _per_call
from bench.stats import interleave, median, paired_ratio
from clusterdb.core.statement import Classifier, Dialect

__all__ = ["run_routed"]

GOAL = 1.05
CLASSIFY_GOAL_US = 2.0
TYPICAL = STATEMENTS["typical (190 B)"]


def _block(cur: Any, n: int) -> tuple[float, float]:
    """Microseconds per statement over ``n`` statements on one cursor: wall time, and this
    process's CPU time (what the client spends, which the server's and the neighbours'
    time do not blur)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        cur.execute("SELECT 1")
        cur.fetchone()
    return (time.perf_counter() - t0) * 1e6 / n, (time.process_time() - c0) * 1e6 / n


def _classification(result: ScenarioResult, driver: str) -> None:
    dialect: Dialect = "postgresql" if driver == "psycopg" else "mysql"
    cached, uncached = Classifier(dialect), Classifier(dialect, cache_size=0)
    cached.classify(TYPICAL)
    hit = _per_call(functools.partial(cached.classify, TYPICAL), 5) * 1e6
    miss = _per_call(functools.partial(uncached.classify, TYPICAL), 5) * 1e6
    result.add("classify, cached (190 B)", "us", [hit], "CPU time, best of 5")
    result.add("classify, uncached (190 B)", "us", [miss], "CPU time, best of 5")
    result.goal(f"classification cost, cached ({dialect})", hit, CLASSIFY_GOAL_US, "<=", "us")


def run_routed(ctx: Ctx, driver: str) -> ScenarioResult:
    c = ctx.counts
    cl = ctx.cluster(driver)
    settings = peers.driver_settings(driver)
    result = ScenarioResult(
        key=f"routed-{driver}",
        title=f"4b. routed connection, per statement ({driver})",
        path="direct",
        settings={"block": c.q_block, "rounds": c.q_rounds, **settings},
    )
    name = f"bench-routed-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        routed = clusterdb.connect(name, role="auto")
        try:
            cursors = {"routed": routed.cursor()}
            node = peers.whoami(routed, cl.WHOAMI_SQL)
            cursors[driver] = routed.replica_connection.cursor()
            for cur in cursors.values():
                _block(cur, c.q_block)  # warm-up
            samples: dict[str, list[float]] = {who: [] for who in cursors}
            cpu: dict[str, list[float]] = {who: [] for who in cursors}
            gc.disable()
            try:
                for who in interleave(list(cursors), c.q_rounds):
                    wall, used = _block(cursors[who], c.q_block)
                    samples[who].append(wall)
                    cpu[who].append(used)
            finally:
                gc.enable()
            on_replica = routed.last_target == "replica"
        finally:
            routed.close()
    r = paired_ratio(samples["routed"], samples[driver])
    result.add(driver, "us", samples[driver], "the routed connection's own replica connection")
    result.add("routed (role=auto)", "us", samples["routed"], f"{r:.3f}x {driver}, paired")
    added = median(cpu["routed"]) - median(cpu[driver])
    result.add(f"{driver}, client CPU", "us", cpu[driver], "time.process_time per statement")
    result.add("routed, client CPU", "us", cpu["routed"], f"+{added:.2f} us per statement")
    result.notes.append(
        f"client CPU per statement: {median(cpu[driver]):.1f} us with {driver} alone, "
        f"{added:+.2f} us routed (the wall-time ratio is the goal; under load it is noisy)"
    )
    result.notes.append(
        f"both on {node} ({'a replica' if on_replica else 'not a replica'}), one server "
        f"backend; {c.q_rounds} rounds of {c.q_block} SELECT 1, interleaved"
    )
    result.goal(f"routed statement, role=auto / {driver} (same connection)", r, GOAL, "<=")
    _classification(result, driver)
    log(f"{result.title}: routed/{driver} = {r:.3f}")
    return result
