"""Scenario 9: read-your-writes tokens (issue 15): stale reads with and without a token.

One replica applies changes 1 s late (PostgreSQL ``recovery_min_apply_delay``, MariaDB
``MASTER_DELAY``). Each cycle writes a row on the primary, connects with ``role="replica"``
(with ``after=causal_token(writer)``, or without) and reads the row back. Contenders: the
token, no token. Counted: stale reads, the share served by replicas, and the time of the read
side (connect + the read + close) per cycle.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log
from bench.model import ScenarioResult
from bench.stats import mean
from clusterdb.core.causal import covers, parse_token
from clusterdb.core.causal_rules import parse_applied

__all__ = ["run_causal"]

DELAY = 1.0  # seconds, the late replica's


def _execute(conn: Any, sql: str, params: tuple[Any, ...] = ()) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchone() if cur.description else None
    finally:
        cur.close()


def _cycles(
    name: str, table: str, first: int, count: int, token: bool
) -> tuple[int, dict[str, int], list[float]]:
    """(stale reads, reads per node, ms of each read side)."""
    stale = 0
    served: dict[str, int] = {}
    times: list[float] = []
    with contextlib.closing(clusterdb.connect(name, role="primary")) as writer:
        for i in range(first, first + count):
            _execute(writer, f"INSERT INTO {table} VALUES (%s)", (i,))
            after = clusterdb.causal_token(writer) if token else None
            t0 = time.perf_counter()
            reader = clusterdb.connect(name, role="replica", after=after)
            try:
                row = _execute(reader, f"SELECT count(*) FROM {table} WHERE id = %s", (i,))
            finally:
                reader.close()
            times.append((time.perf_counter() - t0) * 1e3)
            ref = clusterdb.node_of(reader)
            node = ref.node if ref else "?"
            served[node] = served.get(node, 0) + 1
            stale += row is None or row[0] != 1
    return stale, served, times


def _until_replicas_apply(name: str, token_text: str, timeout: float = 20.0) -> None:
    """Probe until every replica's applied position (stats ``applied``) covers the token."""
    token = parse_token(token_text)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replicas = [n for n in clusterdb.probe(name).nodes if n.role == "replica"]
        if all(covers(parse_applied(token.kind, n.applied), token) for n in replicas):
            return
        time.sleep(0.05)
    raise TimeoutError(f"replicas of {name} did not apply {token_text} in {timeout:g} s")


def run_causal(ctx: Ctx, driver: str) -> ScenarioResult:
    count = ctx.counts.k_cycles
    cl = ctx.cluster(driver)
    late = cl.nodes[-1]
    settings = peers.driver_settings(driver)
    result = ScenarioResult(
        key=f"causal-{driver}",
        title=f"8. read-your-writes tokens, one replica {DELAY:g} s late ({driver})",
        path="proxy",
        settings={"cycles": count, "delay_s": DELAY, **settings},
    )
    table = f"bench_ryw_{uuid.uuid4().hex[:8]}"
    name = f"bench-causal-{driver}"
    with ctx.registered_as(name, driver, via_proxy=True, settings=settings):
        with contextlib.closing(clusterdb.connect(name, role="primary")) as conn:
            _execute(conn, f"CREATE TABLE {table} (id int PRIMARY KEY)")
            created = clusterdb.causal_token(conn)
        _until_replicas_apply(name, created)  # every replica has the table before one is late
        cl.fault(f"delay={DELAY}", late.name)
        try:
            clusterdb.stats.reset(name)
            with_token = _cycles(name, table, 1, count, token=True)
            stats = clusterdb.stats.snapshot(name)
            without = _cycles(name, table, 1 + count, count, token=False)
        finally:
            cl.fault("delay=0", late.name)
            with contextlib.closing(clusterdb.connect(name, role="primary")) as conn:
                _execute(conn, f"DROP TABLE {table}")
    replicas = {n.name for n in cl.nodes[1:]}
    shares = {}
    for who, (stale, served, times) in (("token", with_token), ("no token", without)):
        on_replicas = sum(v for k, v in served.items() if k in replicas) / count
        shares[who] = on_replicas
        result.add(
            who,
            "ms",
            times,
            f"{stale} stale of {count}, {on_replicas:.0%} on replicas, "
            f"served {served}, read side mean {mean(times):.2f} ms",
            stale=float(stale),
            share=on_replicas,
        )
    result.notes.append(
        f"{late.name} applies changes {DELAY:g} s late; with tokens {stats.causal_waits} "
        f"waits and {stats.causal_fallbacks} fallbacks (causal_wait 1 s)"
    )
    result.goal(f"stale reads with tokens ({driver})", float(with_token[0]), 0.0, "<=", "")
    result.goal(f"reads on replicas with tokens ({driver})", shares["token"], 0.9, ">=", "")
    log(
        f"{result.title}: stale {with_token[0]} with tokens, {without[0]} without; "
        f"{shares['token']:.0%} on replicas"
    )
    return result
