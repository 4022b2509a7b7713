"""Stand-ins for the race tests: connections, attempt functions and clusters with no database
(what an attempt does against a server is tested in tests/server)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from clusterdb.config import cluster_from_kwargs
from clusterdb.core.description import Role
from clusterdb.core.selection import Plan
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.race import race

NODES = ("a", "b", "c")


class Conn:
    """Stands for a connection: remembers which node made it and whether it was closed."""

    def __init__(self, node: str, role: Role | None = None) -> None:
        self.node = node
        self.role = role
        self.closed = threading.Event()

    def close(self) -> None:
        self.closed.set()


class RoleAdapter(GenericAdapter):
    """sqlite3's adapter, except that a Conn tells its role (to test role verification)."""

    def detect_role(self, conn: Any) -> Role | None:
        role: Role | None = conn.role
        return role


Behaviour = Callable[[str, float], Any]


class Attempts:
    """The attempt function: runs each node's behaviour and records when it started."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.started: dict[str, float] = {}
        self.made: list[Conn] = []
        self.lock = threading.Lock()

    def __call__(self, node: str, timeout: float) -> Any:
        with self.lock:
            self.started[node] = time.monotonic()
        result = self.behaviours[node](node, timeout)
        if isinstance(result, Conn):
            with self.lock:
                self.made.append(result)
        return result


def ok(after: float = 0.0, role: Role | None = None) -> Behaviour:
    def behave(node: str, timeout: float) -> Conn:
        time.sleep(after)
        return Conn(node, role)

    return behave


def fail(after: float = 0.0, message: str = "refused") -> Behaviour:
    def behave(node: str, timeout: float) -> Conn:
        time.sleep(after)
        raise sqlite3.OperationalError(f"{node}: {message}")

    return behave


def hang(release: threading.Event, then: Behaviour | None = None) -> Behaviour:
    """Blocks until ``release`` (a hung node), then succeeds (or does ``then``)."""

    def behave(node: str, timeout: float) -> Any:
        release.wait(30)
        return (then or ok())(node, timeout)

    return behave


def make_cluster(
    nodes: tuple[str, ...] = NODES, adapter: GenericAdapter | None = None, **options: Any
) -> Cluster:
    specs = [{"name": n, "dsn": ":memory:"} for n in nodes]
    config = cluster_from_kwargs("racer", sqlite3, specs, options)
    return Cluster(config, adapter or GenericAdapter(sqlite3))


def run(
    cluster: Cluster,
    attempts: Attempts,
    *,
    race_all: bool = False,
    delay: float = 5.0,
    timeout: float = 10.0,
    wanted: Any = "any",
    nodes: tuple[str, ...] = NODES,
) -> Any:
    """Run a hand-made plan, counting its first attempts pending as cluster.begin() does."""
    plan = Plan(
        nodes=nodes,
        hedge_delays=tuple(0.0 if race_all else delay for _ in nodes),
        race=race_all,
    )
    for node in nodes if race_all else nodes[:1]:
        cluster.attempt_started(node)
    return race(cluster, plan, attempts, timeout=timeout, wanted=wanted)


def settle(cluster: Cluster, timeout: float = 10.0) -> None:
    """Wait until no attempt is pending (every attempt thread recorded its outcome)."""
    deadline = time.monotonic() + timeout
    while any(n.pending for n in cluster.stats_snapshot().nodes):
        assert time.monotonic() < deadline, "attempts still pending"
        time.sleep(0.01)


def totals(cluster: Cluster) -> dict[str, int]:
    nodes = cluster.stats_snapshot().nodes
    return {
        "connects": sum(n.connects for n in nodes),
        "errors": sum(n.connect_errors for n in nodes),
        "discarded": sum(n.discarded for n in nodes),
        "pending": sum(n.pending for n in nodes),
    }


def in_threads(target: Callable[[], None], count: int, timeout: float = 30.0) -> None:
    """Run ``target`` in ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
