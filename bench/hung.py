"""Scenario 3: connect while 2 of 3 nodes are hung (accept TCP, never answer).

Every contender goes through the harness proxies, whose "deaf" mode makes the hung nodes
(a real hung server from the client's view), and uses the same 2 s driver timeout (psycopg's
minimum). The sequential peers list the hung nodes FIRST: the realistic worst case, where libpq
waits out ``connect_timeout`` on each. clusterdb gets the worst case too: the two nodes it
rates fastest are the ones hung. It is measured on its first connect after the hang (a fresh
cluster each time) and in steady state, against its own healthy connect on the same path.

The steady state is timed between the sequential peers' runs, seconds each, in which the
benchmark waits and the CPUs idle, and a connect after such a pause reads slower for a while,
a vendor connect as much as clusterdb's (docs/design/benchmarks.md). So the healthy baseline is
timed between pauses of the same length and number: the ratio compares clusterdb with itself,
not a busy machine with one that has just woken.
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


def run_hung(ctx: Ctx, driver: str) -> ScenarioResult:
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
        peer_fns = _peer_connects(ctx, driver, settings, [*hung, *up])
        pauses = c.h_peer * len(peer_fns)
        peer_wait = len(hung) * TIMEOUT  # a sequential peer waits out each hung host in turn
        healthy = _healthy_between_pauses(name, c.h_healthy, pauses, peer_wait)
        with deaf(hung):
            first.append(_timed_ms(lambda: clusterdb.connect(name)))
            learn = [_timed_ms(lambda: clusterdb.connect(name)) for _ in range(c.h_learn)]
            samples = _interleaved(name, peer_fns, c.h_steady, c.h_peer)
        snap = clusterdb.stats.snapshot(name)

    result.notes.append(
        f"hung (deaf proxy): {', '.join(n.name for n in hung)}, listed first for the peers; up: "
        f"{', '.join(n.name for n in up)}; driver timeout {TIMEOUT} s on every side; "
        f"clusterdb node states after: " + ", ".join(f"{n.name} {n.state}" for n in snap.nodes)
    )
    result.notes.append(
        f"clusterdb's healthy baseline was timed between {pauses} pauses of "
        f"{peer_wait} s, as its steady state between the sequential peers' runs"
    )
    result.add("clusterdb healthy (same path)", "ms", healthy)
    result.add("clusterdb first connect after hang", "ms", first, "fresh cluster each time")
    result.add(f"clusterdb next {len(learn)} connects", "ms", learn, "learning, not in goals")
    result.add("clusterdb steady state, 2 hung", "ms", samples["clusterdb"])
    _goals(result, driver, samples, healthy)
    return result


def _peer_connects(
    ctx: Ctx, driver: str, settings: dict[str, Any], order: Sequence[RemoteNode]
) -> dict[str, Callable[[], Any]]:
    """The sequential peers' connects, each trying the nodes in ``order``."""
    cl = ctx.cluster(driver)
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
    return peer_fns


def _healthy_between_pauses(name: str, reps: int, pauses: int, pause_s: float) -> list[float]:
    """clusterdb's healthy connects (ms), spread among ``pauses`` sleeps of ``pause_s``: the
    idle gaps its steady state will see between the sequential peers' runs."""
    healthy: list[float] = []
    for who in spread({"clusterdb": reps, "pause": pauses}):
        if who == "pause":
            time.sleep(pause_s)
        else:
            healthy.append(_timed_ms(lambda: clusterdb.connect(name)))
    return healthy


def _interleaved(
    name: str, peer_fns: dict[str, Callable[[], Any]], steady: int, peer_reps: int
) -> dict[str, list[float]]:
    """clusterdb's steady-state connects and the peers' (ms), interleaved."""
    samples: dict[str, list[float]] = {"clusterdb": [], **{p: [] for p in peer_fns}}
    for who in spread({"clusterdb": steady, **dict.fromkeys(peer_fns, peer_reps)}):
        fn = peer_fns.get(who) or (lambda: clusterdb.connect(name))
        t0 = time.monotonic()
        samples[who].append(_timed_ms(fn))
        if who != "clusterdb":
            log(f"  {who}: {time.monotonic() - t0:.2f} s")
    return samples


def _goals(
    result: ScenarioResult, driver: str, samples: dict[str, list[float]], healthy: list[float]
) -> None:
    steady = median(samples["clusterdb"])
    peer_names = [who for who in samples if who != "clusterdb"]
    for peer in peer_names:
        result.add(peer, "ms", samples[peer], "hung hosts first")
    r = ratio(steady, median(healthy))
    result.goal(f"hung 2/3, clusterdb steady / its healthy connect ({driver})", r,
                GOAL_VS_HEALTHY, "<=")  # fmt: skip
    for peer in peer_names:
        speedup = ratio(median(samples[peer]), steady)
        result.goal(f"hung 2/3, {peer} / clusterdb steady", speedup, GOAL_VS_PEERS, ">=")
    log(f"{result.title}: steady {steady:.2f} ms, healthy {median(healthy):.2f} ms")
