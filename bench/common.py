"""What every scenario shares: repetition counts, the running clusters, clusterdb helpers."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import clusterdb
from bench.clusterhost import RemoteCluster, RemoteNode
from bench.idle import IdleControl
from clusterdb.runtime import process

__all__ = [
    "FULL",
    "QUICK",
    "Counts",
    "Ctx",
    "fastest_nodes",
    "log",
    "node_connects",
    "settle",
    "warm",
]


@dataclass(frozen=True)
class Counts:
    """Repetitions per scenario; the full run keeps ``make bench`` under 5 minutes."""

    q_block: int  # SELECT 1 per timed block
    q_rounds: int  # blocks per contender
    q_conns: int  # connections per contender, used in turn
    c_warmup: int  # clusterdb connects before measuring (latencies learned)
    c_rounds: int  # timed connects per contender
    c_best: int  # vendor connects per node to find the best node
    h_first: int  # fresh clusters measured on their first connect after two nodes hang
    h_warmup: int
    h_healthy: int  # clusterdb connects before the hang (its own healthy baseline)
    h_learn: int  # untimed connects after the hang, before steady state
    h_steady: int  # clusterdb connects in steady state
    h_peer: int  # connects per sequential peer (seconds each)
    r_warmup: int
    r_rounds: int  # sessions per contender
    s_threads: tuple[int, ...]
    s_seconds: float  # per block, thread count and contender
    sel_sizes: tuple[int, ...]
    sel_repeats: int  # timed blocks per size
    sel_block: float  # seconds per block
    k_cycles: int = 200  # write-then-read cycles per contender (read-your-writes tokens)
    s_blocks: int = 6  # blocks per thread count and contender, alternating which goes first


FULL = Counts(
    q_block=100,
    q_rounds=800,
    q_conns=8,
    c_warmup=30,
    c_rounds=600,
    c_best=10,
    h_first=5,
    h_warmup=20,
    h_healthy=200,
    h_learn=10,
    h_steady=200,
    h_peer=3,
    r_warmup=40,
    r_rounds=300,
    s_threads=(1, 8, 32),
    s_seconds=2.0,
    sel_sizes=(3, 30, 300),
    sel_repeats=9,
    sel_block=0.1,
)

QUICK = Counts(
    q_block=100,
    q_rounds=30,
    q_conns=2,
    c_warmup=10,
    c_rounds=20,
    c_best=3,
    h_first=1,
    h_warmup=10,
    h_healthy=10,
    h_learn=5,
    h_steady=10,
    h_peer=1,
    r_warmup=20,
    r_rounds=15,
    s_threads=(1, 8, 32),
    s_seconds=0.5,
    sel_sizes=(3, 30, 300),
    sel_repeats=3,
    sel_block=0.05,
    k_cycles=50,
    s_blocks=1,
)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


@dataclass
class Ctx:
    """The running clusters (by driver name) and what the run may use."""

    counts: Counts
    clusters: dict[str, RemoteCluster]
    aws: bool
    idle: IdleControl
    registered: set[str] = field(default_factory=set)

    def cluster(self, driver: str) -> RemoteCluster:
        return self.clusters[driver]

    def register(
        self, name: str, driver: str, *, via_proxy: bool, settings: dict[str, Any]
    ) -> None:
        """Register ``name`` over every node of ``driver``'s cluster, with ``settings``."""
        cl = self.cluster(driver)
        clusterdb.register(
            name,
            driver=driver,
            nodes=cl.node_specs(via_proxy=via_proxy),
            user=cl.user,
            password=cl.password,
            **{cl.dbname_key: cl.dbname},
            **settings,
        )
        self.registered.add(name)

    def unregister(self, name: str) -> None:
        with contextlib.suppress(Exception):
            clusterdb.unregister(name)
        self.registered.discard(name)

    def unregister_all(self) -> None:
        for name in list(self.registered):
            self.unregister(name)

    @contextlib.contextmanager
    def registered_as(
        self, name: str, driver: str, *, via_proxy: bool, settings: dict[str, Any]
    ) -> Iterator[str]:
        self.register(name, driver, via_proxy=via_proxy, settings=settings)
        try:
            yield name
        finally:
            self.unregister(name)

    def node_kwargs(
        self, driver: str, node: RemoteNode, *, via_proxy: bool, settings: dict[str, Any]
    ) -> dict[str, Any]:
        """Vendor ``connect()`` keyword arguments for ``node``, with the shared settings."""
        return {**self.cluster(driver).connect_kwargs(node, via_proxy=via_proxy), **settings}

    def reset_proxies(self) -> None:
        for cl in self.clusters.values():
            for node in cl.nodes:
                with contextlib.suppress(Exception):
                    node.proxy.reset()


def settle(name: str, timeout: float = 5.0) -> None:
    """Wait until no connect attempt of ``name`` is pending (late losers recorded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = clusterdb.stats.snapshot(name)
        if all(n.pending == 0 for n in snap.nodes):
            return
        time.sleep(0.01)


def fastest_nodes(name: str, k: int) -> list[str]:
    """The ``k`` nodes clusterdb currently rates fastest (lowest connect latency)."""
    snap = clusterdb.stats.snapshot(name)
    rated = sorted(
        (n for n in snap.nodes if n.latency_ms is not None),
        key=lambda n: n.latency_ms if n.latency_ms is not None else float("inf"),
    )
    return [n.name for n in rated[:k]]


def node_connects(name: str) -> dict[str, int]:
    """Successful attempts per node so far."""
    return {n.name: n.connects for n in clusterdb.stats.snapshot(name).nodes}


def warm(name: str, count: int, after: Callable[[Any], None] | None = None) -> int:
    """``count`` untimed clusterdb connects, so that clusterdb has learned the latencies, and
    more (up to ``10 * count``) while a node is still on trial (it has an estimate and has
    served no connection yet, see ``SelectionPolicy``): a trial belongs to the learning, not to
    the steady state. Returns how many connects it made."""
    cluster = process.get(name)
    policy = cluster.options.selection

    def on_trial() -> bool:
        return any(n.state == "up" and policy.on_trial(n) for n in cluster.describe().nodes)

    for done in range(10 * count):
        if done >= count:
            settle(name)  # a race's late losers bring their estimates, and trials, with them
            if not on_trial():
                return done
        conn = clusterdb.connect(name)
        if after is not None:
            after(conn)
        conn.close()
    return 10 * count
