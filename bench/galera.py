"""Scenario "galera": a usable connection from a 3-node MariaDB Galera cluster whose first node is
isolated into a minority (``GaleraCluster.isolate``, Galera 4's ``gmcast.isolate``).

An isolated node still completes the MySQL handshake and even answers ``SELECT 1``; only a
statement that reads a table fails (``WSREP has not yet prepared node for application use``). So
the PyMySQL loop over the host list that users write (peers.pymysql_loop: first host that
connects) hands out a connection that cannot serve a query, every time the isolated node is
listed first; the loop a careful user writes checks each connection with a read of a table and
goes on to the next host. clusterdb (``topology = "galera"``) knows the node is non-primary from
its probe and never tries it. Each contender is timed to a usable connection: connect, then the
same read of a one-row table.

The Galera servers run in this process's harness (direct ports, no proxy: the isolation is
Galera's own), not in the cluster host process of the other scenarios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import clusterdb
from bench import peers
from bench.common import Ctx, log, warm
from bench.model import ScenarioResult
from bench.stats import median, ratio, spread

__all__ = ["run_galera"]

TABLE = "bench_galera"
CHECK = f"SELECT COUNT(*) FROM {TABLE}"

GOAL_VS_CHECKED_LOOP = 1.5  # a usable connection: the careful loop tries two nodes
TIMEOUT = 2


def _check(conn: Any) -> None:
    cur = conn.cursor()
    cur.execute(CHECK)
    cur.fetchone()
    cur.close()


def _usable(connect: Callable[[], Any]) -> tuple[float, bool]:
    """ms to a connection and its read of a table; whether the read succeeded."""
    t0 = time.perf_counter()
    conn = connect()
    try:
        _check(conn)
        ok = True
    except Exception:
        ok = False
    dt = (time.perf_counter() - t0) * 1e3
    peers.close_quietly(conn)
    return dt, ok


def _checked_loop(nodes: list[dict[str, Any]], common: dict[str, Any]) -> Any:
    """The careful user's loop: each host in turn, kept once a read of a table answers."""
    import pymysql

    last: Exception | None = None
    for node in nodes:
        try:
            conn = pymysql.connect(host=node["host"], port=node["port"], **common)
        except pymysql.err.OperationalError as exc:
            last = exc
            continue
        try:
            _check(conn)
        except pymysql.err.MySQLError as exc:
            peers.close_quietly(conn)
            last = exc
            continue
        return conn
    assert last is not None
    raise last


def run_galera(ctx: Ctx) -> ScenarioResult:
    from clusterdb.testing import GaleraCluster

    reps = max(ctx.counts.c_rounds, 20)
    settings = {"connect_timeout": TIMEOUT, "ssl_disabled": True}
    result = ScenarioResult(
        key="galera",
        title="galera: connect with 1 of 3 Galera nodes isolated (pymysql)",
        path="direct",
        settings={"reps": reps, **settings},
    )
    t0 = time.monotonic()
    with GaleraCluster(nodes=3) as g:
        log(f"  Galera cluster up in {time.monotonic() - t0:.1f} s")
        isolated = g.nodes[0]
        hosts = [{"host": s["host"], "port": s["port"]} for s in g.node_specs(via_proxy=False)]
        common = {**settings, "user": g.user, "password": g.password, "database": g.dbname}
        name = "bench-galera"
        clusterdb.register(
            name,
            driver="pymysql",
            nodes=g.node_specs(via_proxy=False),
            user=g.user,
            password=g.password,
            database=g.dbname,
            topology="galera",
            heartbeat=1.0,
            **settings,
        )
        try:
            g.execute(g.nodes[1], f"CREATE TABLE IF NOT EXISTS {TABLE} (id INT PRIMARY KEY)")
            g.execute(g.nodes[1], f"REPLACE INTO {TABLE} VALUES (1)")
            warm(name, ctx.counts.c_warmup)
            g.isolate(isolated)
            clusterdb.probe(name)
            warm(name, ctx.counts.c_warmup)
            state = clusterdb.stats.snapshot(name).node(isolated.name).galera
            samples: dict[str, list[float]] = {"clusterdb": [], "checked": [], "naive": []}
            usable = {k: 0 for k in samples}
            fns: dict[str, Callable[[], Any]] = {
                "clusterdb": lambda: clusterdb.connect(name),
                "checked": lambda: _checked_loop(hosts, common),
                "naive": lambda: peers.pymysql_loop(hosts, common),
            }
            for who in spread(dict.fromkeys(samples, reps)):
                dt, ok = _usable(fns[who])
                samples[who].append(dt)
                usable[who] += ok
            g.rejoin(isolated)
        finally:
            clusterdb.unregister(name)
    result.notes.append(
        f"isolated: {isolated.name}, first in every host list; clusterdb saw it as {state}; "
        f"usable connections: clusterdb {usable['clusterdb']}/{reps}, careful loop "
        f"{usable['checked']}/{reps}, naive loop {usable['naive']}/{reps}"
    )
    result.add("clusterdb connect + read", "ms", samples["clusterdb"])
    result.add("pymysql loop over hosts, read check", "ms", samples["checked"])
    result.add(
        "pymysql loop over hosts (first that connects)",
        "ms",
        samples["naive"],
        f"{reps - usable['naive']} of {reps} connections unusable",
    )
    ours = median(samples["clusterdb"])
    r = ratio(median(samples["checked"]), ours)
    result.goal(
        "galera 1/3 isolated, pymysql checked loop / clusterdb", r, GOAL_VS_CHECKED_LOOP, ">="
    )
    result.goal(
        "galera 1/3 isolated, clusterdb unusable connections",
        reps - usable["clusterdb"],
        0,
        "<=",
        unit="",
    )
    log(f"{result.title}: clusterdb {ours:.2f} ms, checked loop x{r:.2f}")
    return result
