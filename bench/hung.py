"""Scenario 3: connect while 2 of 3 nodes are hung (accept TCP, never answer).

Every contender goes through the harness proxies, whose "deaf" mode makes the hung nodes
(a real hung server from the client's view), and uses the same 2 s driver timeout (psycopg's
minimum). The sequential peers list the hung nodes FIRST: the realistic worst case, where libpq
waits out ``connect_timeout`` on each. clusterdb gets the worst case too: the two nodes it
rates fastest are the ones hung. It is measured on its first connect after the hang (a fresh
cluster each time) and in steady state, against its own healthy connect on the same path.

The steady state is timed between the sequential peers' runs, seconds each, in which the
benchmark waits and the CPUs idle; on this 2-core VM a connect after such a pause reads up to
50 % slower for a while, a vendor connect as much as clusterdb's (measured: PyMySQL alone, to
the node left up, 0.40 ms before the hang and 0.59 ms between the peers' runs). So the healthy
baseline is timed between pauses of the same length and number: the ratio compares clusterdb
with itself, not a busy machine with one that has just woken.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import clusterdb
from bench import peers
from bench.clusterhost import RemoteNode
from bench.common import Ctx, fastest_nodes, log, warm
from bench.model import ScenarioResult
from bench.stats import median, ratio, spread

__all__ = ["run_hung"]

TIMEOUT = 2  # seconds: psycopg's minimum connect_timeout
GOAL_VS_HEALTHY = 1.5
GOAL_VS_PEERS = 100.0


@contextlib.contextmanager
def deaf(nodes: Sequence[RemoteNode]) -> Iterator[None]:
    try:
        for node in nodes:
            node.proxy.set_mode("deaf")
        yield
    except BaseException:
        # Leave the original error (Ctrl-C, a dead cluster host) to propagate, not ours.
        with contextlib.suppress(Exception):
            for node in nodes:
                node.proxy.set_mode("pass")
        raise
    for node in nodes:
        node.proxy.set_mode("pass")


def _timed_ms(connect: Callable[[], Any]) -> float:
    dt, conn = peers.timed(connect)
    peers.close_quietly(conn)
    return dt * 1e3


def _first_after_hang(ctx: Ctx, driver: str, settings: dict[str, Any], rep: int) -> float:
    """A fresh cluster learns healthy latencies, its two favourites hang, one connect."""
    with ctx.registered_as(
        f"bench-hung-first-{driver}-{rep}", driver, via_proxy=True, settings=settings
    ) as name:
        warm(name, ctx.counts.h_warmup)
        with deaf(_favourites(ctx, driver, name)):
            return _timed_ms(lambda: clusterdb.connect(name))


def _favourites(ctx: Ctx, driver: str, name: str) -> list[RemoteNode]:
    """The two nodes clusterdb rates fastest (registration order fills in unrated ones)."""
    cl = ctx.cluster(driver)
    names = fastest_nodes(name, 2)
    names += [n.name for n in cl.nodes if n.name not in names][: 2 - len(names)]
    return [cl.node(n) for n in names]


def run_hung(ctx: Ctx, driver: str) -> ScenarioResult:  # noqa: PLR0915  (to split)
    c = ctx.counts
    cl = ctx.cluster(driver)
    settings = peers.driver_settings(driver, hung=True, timeout=TIMEOUT)
    result = ScenarioResult(
        key=f"hung-{driver}",
        title=f"3. connect, 2 of 3 nodes hung ({driver})",
        path="proxy",
        settings={"peer_reps": c.h_peer, "steady": c.h_steady, **settings},
    )
    if len(cl.nodes) < 3:
        raise RuntimeError(f"needs 3 nodes, the {driver} cluster has {len(cl.nodes)}")
    first = [_first_after_hang(ctx, driver, settings, rep) for rep in range(c.h_first)]

    name = f"bench-hung-{driver}"
    with ctx.registered_as(name, driver, via_proxy=True, settings=settings):
        warm(name, c.h_warmup)
        hung = _favourites(ctx, driver, name)
        up = [n for n in cl.nodes if n not in hung]
        # Hung hosts first, in the order clusterdb rated them.
        order = [*hung, *up]
        hosts: list[dict[str, Any]] = [{"host": n.host, "port": n.proxy_port} for n in order]
        common = {**settings, "user": cl.user, "password": cl.password}
        common[cl.dbname_key] = cl.dbname
        peer_fns: dict[str, Callable[[], Any]] = {}
        if driver == "psycopg":
            peer_fns["psycopg host=a,b,c"] = lambda: peers.psycopg_multihost(hosts, common)
            if ctx.aws:
                # The wrapper hands the host list to libpq, which tries it in order.
                peer_fns["aws-wrapper host=a,b,c"] = lambda: peers.aws_connect(
                    {**common, "host": ",".join(h["host"] for h in hosts),
                     "port": ",".join(str(h["port"]) for h in hosts)}
                )  # fmt: skip
        else:
            peer_fns["pymysql loop over hosts"] = lambda: peers.pymysql_loop(hosts, common)
        peer_wait = len(hung) * TIMEOUT  # a sequential peer waits out each hung host in turn
        healthy: list[float] = []
        for who in spread({"clusterdb": c.h_healthy, "pause": c.h_peer * len(peer_fns)}):
            if who == "pause":
                time.sleep(peer_wait)  # what each sequential peer's run will take
            else:
                healthy.append(_timed_ms(lambda: clusterdb.connect(name)))
        samples: dict[str, list[float]] = {"clusterdb": [], **{p: [] for p in peer_fns}}
        learn: list[float] = []
        with deaf(hung):
            first.append(_timed_ms(lambda: clusterdb.connect(name)))
            learn = [_timed_ms(lambda: clusterdb.connect(name)) for _ in range(c.h_learn)]
            counts = {"clusterdb": c.h_steady, **dict.fromkeys(peer_fns, c.h_peer)}
            for who in spread(counts):
                fn = peer_fns.get(who) or (lambda: clusterdb.connect(name))
                t0 = time.monotonic()
                samples[who].append(_timed_ms(fn))
                if who != "clusterdb":
                    log(f"  {who}: {time.monotonic() - t0:.2f} s")
        snap = clusterdb.stats.snapshot(name)

    hung_names = ", ".join(n.name for n in hung)
    result.notes.append(
        f"hung (deaf proxy): {hung_names}, listed first for the peers; up: "
        f"{', '.join(n.name for n in up)}; driver timeout {TIMEOUT} s on every side; "
        f"clusterdb node states after: " + ", ".join(f"{n.name} {n.state}" for n in snap.nodes)
    )
    result.notes.append(
        f"clusterdb's healthy baseline was timed between {c.h_peer * len(peer_fns)} pauses of "
        f"{peer_wait} s, as its steady state between the sequential peers' runs"
    )
    result.add("clusterdb healthy (same path)", "ms", healthy)
    result.add("clusterdb first connect after hang", "ms", first, "fresh cluster each time")
    result.add(f"clusterdb next {len(learn)} connects", "ms", learn, "learning, not in goals")
    result.add("clusterdb steady state, 2 hung", "ms", samples["clusterdb"])
    steady = median(samples["clusterdb"])
    for peer in peer_fns:
        result.add(peer, "ms", samples[peer], "hung hosts first")
    r = ratio(steady, median(healthy))
    result.goal(f"hung 2/3, clusterdb steady / its healthy connect ({driver})", r,
                GOAL_VS_HEALTHY, "<=")  # fmt: skip
    for peer in peer_fns:
        speedup = ratio(median(samples[peer]), steady)
        result.goal(f"hung 2/3, {peer} / clusterdb steady", speedup, GOAL_VS_PEERS, ">=")
    log(f"{result.title}: steady {steady:.2f} ms, healthy {median(healthy):.2f} ms")
    return result
