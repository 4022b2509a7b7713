"""Scenario 7: ``await clusterdb.connect_async()`` against the asyncio drivers alone.

Everything runs on one event loop in the benchmark's main thread, contenders interleaved as in
the other scenarios.

* **Healthy** (direct ports): connect_async after a warm-up (through connect_async itself),
  against the asyncio driver alone on every node; the best node is the one where the driver's
  median is lowest. The driver is the one connect_async returns: psycopg's
  ``AsyncConnection`` for PostgreSQL, asyncmy for a cluster registered with PyMySQL.
* **2 of 3 nodes hung** (deaf proxies, as scenario 3): the two nodes clusterdb rates fastest
  hang and the peers list them first: psycopg's ``AsyncConnection.connect(host=a,b,c)`` and
  a loop over the hosts with aiomysql (its handshake bounded by ``asyncio.wait_for``, since
  its ``connect_timeout`` covers the TCP connect only). clusterdb in steady state, after
  connects to learn.
* **aiomysql against asyncmy** (MariaDB only, no goal): connect and ``SELECT 1`` on the best
  node, why connect_async uses asyncmy (see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import clusterdb
from bench.common import Ctx, fastest_nodes, log, settle
from bench.hung import deaf
from bench.model import ScenarioResult
from bench.peers import driver_settings
from bench.stats import interleave, median, ratio, spread
from clusterdb.drivers.mysql_async import asyncmy_kwargs

__all__ = ["run_async_connect"]

TIMEOUT = 2  # seconds: psycopg's minimum connect_timeout, on every side
GOAL_RATIO = 1.10
GOAL_VS_PEERS = 100.0

AsyncConnect = Callable[[], Awaitable[Any]]


async def _close(conn: Any) -> None:
    """Close ``conn``, and let the loop finish closing it (asyncmy and aiomysql close their
    socket in the next loop iteration): the next connect timed starts with nothing pending."""
    with contextlib.suppress(Exception):
        if hasattr(conn, "pgconn"):
            await conn.close()
        else:
            conn.close()
    await asyncio.sleep(0)


async def _timed_ms(connect: AsyncConnect) -> float:
    t0 = time.perf_counter()
    conn = await connect()
    dt = time.perf_counter() - t0
    await _close(conn)
    return dt * 1e3


def _vendor(driver: str, kwargs: Mapping[str, Any]) -> AsyncConnect:
    """The asyncio driver connect_async uses, alone, on one node."""
    if driver == "psycopg":
        import psycopg

        return lambda: psycopg.AsyncConnection.connect(**kwargs)
    from asyncmy.connection import Connection

    made = asyncmy_kwargs(kwargs)

    async def connect() -> Any:
        conn: Any = Connection(**made)  # type: ignore[no-untyped-call]
        await conn.connect()
        return conn

    return connect


def _aiomysql(kwargs: Mapping[str, Any]) -> AsyncConnect:
    import aiomysql

    args = {k: v for k, v in kwargs.items() if k not in ("ssl_disabled", "read_timeout")}
    args["db"] = args.pop("database")

    async def connect() -> Any:
        return await asyncio.wait_for(aiomysql.connect(**args), TIMEOUT)

    return connect


def _aiomysql_loop(hosts: Sequence[Mapping[str, Any]], common: Mapping[str, Any]) -> AsyncConnect:
    """What aiomysql users write for failover: each host in turn, the first that answers."""

    async def connect() -> Any:
        last: BaseException | None = None
        for host in hosts:
            try:
                return await _aiomysql({**common, **host})()
            except Exception as exc:
                last = exc
        assert last is not None
        raise last

    return connect


async def _warm(name: str, count: int) -> None:
    """``count`` connect_async, then more (up to 10x) while a node is still on trial."""
    from clusterdb.runtime import process

    cluster = process.get(name)
    policy = cluster.options.selection
    for done in range(10 * count):
        if done >= count:
            settle(name)
            if not any(n.state == "up" and policy.on_trial(n) for n in cluster.describe().nodes):
                return
        await _close(await clusterdb.connect_async(name))


async def _healthy(ctx: Ctx, driver: str, result: ScenarioResult, settings: dict[str, Any]) -> str:
    c, cl = ctx.counts, ctx.cluster(driver)
    name = f"bench-async-{driver}"
    with ctx.registered_as(name, driver, via_proxy=False, settings=settings):
        await _warm(name, c.c_warmup)
        contenders: dict[str, AsyncConnect] = {"clusterdb": lambda: clusterdb.connect_async(name)}
        for node in cl.nodes:
            kwargs = ctx.node_kwargs(driver, node, via_proxy=False, settings=settings)
            contenders[node.name] = _vendor(driver, kwargs)
        settle(name)
        clusterdb.stats.reset(name)
        samples: dict[str, list[float]] = {who: [] for who in contenders}
        for who in interleave(list(contenders), c.c_rounds):
            samples[who].append(await _timed_ms(contenders[who]))
        settle(name)
        snap = clusterdb.stats.snapshot(name)
    by_node = {n.name: median(samples[n.name]) for n in cl.nodes}
    best = min(by_node, key=lambda n: by_node[n])
    ours = median(samples["clusterdb"])
    vendor = "psycopg AsyncConnection" if driver == "psycopg" else "asyncmy"
    r = ratio(ours, by_node[best])
    result.add("connect_async (healthy)", "ms", samples["clusterdb"], f"{r:.3f}x best node")
    for node in cl.nodes:
        tag = " (best)" if node.name == best else ""
        result.add(f"{vendor} -> {node.name}{tag}", "ms", samples[node.name])
    opened = sum(n.connects for n in snap.nodes)
    result.notes.append(
        f"healthy: clusterdb opened {opened} server connections for "
        f"{len(samples['clusterdb'])} connect_async() calls "
        f"({', '.join(f'{n.name} {n.connects}' for n in snap.nodes)})"
    )
    result.goal(f"healthy connect_async / {vendor} to best node", r, GOAL_RATIO, "<=")
    return best


async def _hung(ctx: Ctx, driver: str, result: ScenarioResult) -> None:
    c, cl = ctx.counts, ctx.cluster(driver)
    settings = driver_settings(driver, hung=True, timeout=TIMEOUT)
    name = f"bench-async-hung-{driver}"
    with ctx.registered_as(name, driver, via_proxy=True, settings=settings):
        await _warm(name, c.h_warmup)
        names = fastest_nodes(name, 2)
        names += [n.name for n in cl.nodes if n.name not in names][: 2 - len(names)]
        hung = [cl.node(n) for n in names]
        order = [*hung, *(n for n in cl.nodes if n not in hung)]
        hosts = [{"host": n.host, "port": n.proxy_port} for n in order]
        common = {**settings, "user": cl.user, "password": cl.password, cl.dbname_key: cl.dbname}
        peer_fn: AsyncConnect
        if driver == "psycopg":
            import psycopg

            multi = {
                **common,
                "host": ",".join(str(h["host"]) for h in hosts),
                "port": ",".join(str(h["port"]) for h in hosts),
            }
            peer = "psycopg AsyncConnection host=a,b,c"
            peer_fn = lambda: psycopg.AsyncConnection.connect(**multi)  # noqa: E731
        else:
            peer, peer_fn = "aiomysql loop over hosts", _aiomysql_loop(hosts, common)
        samples: dict[str, list[float]] = {"clusterdb": [], peer: []}
        with deaf(hung):
            for _ in range(c.h_learn):
                await _timed_ms(lambda: clusterdb.connect_async(name))
            for who in spread({"clusterdb": c.h_steady, peer: c.h_peer}):
                fn = peer_fn if who == peer else (lambda: clusterdb.connect_async(name))
                samples[who].append(await _timed_ms(fn))
    steady = median(samples["clusterdb"])
    result.add("connect_async, 2 of 3 hung (steady)", "ms", samples["clusterdb"])
    result.add(peer, "ms", samples[peer], "hung hosts first")
    result.notes.append(
        f"hung (deaf proxy): {', '.join(n.name for n in hung)}, listed first for the peer; "
        f"timeout {TIMEOUT} s on every side"
    )
    speedup = ratio(median(samples[peer]), steady)
    result.goal(f"hung 2/3, {peer} / connect_async steady", speedup, GOAL_VS_PEERS, ">=")


async def _drivers(ctx: Ctx, result: ScenarioResult, best: str, settings: dict[str, Any]) -> None:
    """aiomysql against asyncmy on the best node: connect, and SELECT 1 in blocks of 20."""
    cl = ctx.cluster("pymysql")
    kwargs = ctx.node_kwargs("pymysql", cl.node(best), via_proxy=False, settings=settings)
    connects = {"asyncmy": _vendor("pymysql", kwargs), "aiomysql": _aiomysql(kwargs)}
    conn_ms: dict[str, list[float]] = {k: [] for k in connects}
    query_us: dict[str, list[float]] = {k: [] for k in connects}
    for who in interleave(list(connects), ctx.counts.c_rounds // 2):
        t0 = time.perf_counter()
        conn = await connects[who]()
        conn_ms[who].append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        for _ in range(20):
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
                await cur.fetchall()
        query_us[who].append((time.perf_counter() - t0) / 20 * 1e6)
        await _close(conn)
    for who in connects:
        result.add(f"{who} connect (alone)", "ms", conn_ms[who], "why asyncmy: see the README")
        result.add(f"{who} SELECT 1", "us", query_us[who])


def run_async_connect(ctx: Ctx, driver: str) -> ScenarioResult:
    settings = driver_settings(driver, timeout=TIMEOUT)
    result = ScenarioResult(
        key=f"async-{driver}",
        title=f"7. asyncio connect ({driver})",
        path="direct (healthy), proxy (hung)",
        settings={"rounds": ctx.counts.c_rounds, "steady": ctx.counts.h_steady, **settings},
    )

    async def main() -> None:
        best = await _healthy(ctx, driver, result, settings)
        await _hung(ctx, driver, result)
        if driver == "pymysql":
            await _drivers(ctx, result, best, settings)

    asyncio.run(main())
    for goal in result.goals:
        log(f"{result.title}: {goal.what}: {goal.value:.3f}")
    return result
