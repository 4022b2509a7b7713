"""Helpers for the routing, health, role, lag and drain server tests (issue 4).

Everything here works on real servers: a thread that keeps connecting and records where each
connection landed, a thread that keeps writing on the primary so that a delayed replica has
something to lag on, and small polling helpers that wait for a condition until a deadline
instead of sleeping and hoping.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from connect_support import whoami

import clusterdb
from clusterdb.core.description import WantedRole
from clusterdb.stats import NodeStats
from clusterdb.testing.cluster import Cluster, TestNode


def node_stats(name: str, node: str) -> NodeStats:
    return clusterdb.stats.snapshot(name).node(node)


def until(check: Callable[[], bool], timeout: float, interval: float = 0.02) -> float | None:
    """Poll ``check`` until it is true: the seconds it took, or None at ``timeout``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


def land(harness: Cluster, name: str, role: WantedRole = "any") -> str:
    """Connect to cluster ``name`` and say which node answered (the connection is closed)."""
    with contextlib.closing(clusterdb.connect(name, role=role)) as conn:
        node = whoami(harness, conn)
        with contextlib.suppress(Exception):
            conn.rollback()
    return node


@dataclass
class Landing:
    at: float
    """monotonic() when connect() returned."""
    node: str | None
    """The node that answered WHOAMI; None when the query failed (the node died under it)."""


@dataclass
class ConnectLoop:
    """A thread doing connect() after connect() and recording where each one landed.

    ``failures`` are connect() calls that raised; a connection whose WHOAMI query failed
    afterwards (its node was killed between the two) is a landing on an unknown node, not a
    connect() failure.
    """

    harness: Cluster
    name: str
    role: WantedRole = "any"
    pause: float = 0.005
    landings: list[Landing] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def __enter__(self) -> ConnectLoop:
        self.thread = threading.Thread(target=self._run, name="test-connect-loop", daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        assert self.thread is not None
        self.thread.join(30)
        assert not self.thread.is_alive(), "the connect loop did not stop"

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                conn = clusterdb.connect(self.name, role=self.role)
            except Exception as exc:
                with self.lock:
                    self.failures.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
            else:
                at = time.monotonic()
                try:
                    node: str | None = whoami(self.harness, conn)
                except Exception:
                    node = None
                finally:
                    with contextlib.suppress(Exception):
                        conn.close()
                with self.lock:
                    self.landings.append(Landing(at, node))
            time.sleep(self.pause)

    def since(self, t: float) -> list[str | None]:
        """Nodes of the connects that returned after ``t``, in order."""
        with self.lock:
            return [x.node for x in self.landings if x.at > t]

    def wait_landings(self, after: float, count: int, timeout: float = 20.0) -> list[str | None]:
        """Wait until ``count`` connects returned after ``after``; their nodes."""
        assert until(lambda: len(self.since(after)) >= count, timeout) is not None, (
            f"fewer than {count} connects in {timeout} s; failures: {self.failures[-3:]}"
        )
        return self.since(after)


class Writer:
    """Writes a row on the primary every ``interval`` seconds, so replicas have something to
    replay (and a delayed one something to lag on). The table is created and dropped here."""

    def __init__(self, harness: Cluster, interval: float = 0.1) -> None:
        self.harness = harness
        self.interval = interval
        self.table = f"lag_{uuid.uuid4().hex[:8]}"
        self.writes = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-writer", daemon=True)

    def __enter__(self) -> Writer:
        primary = self.harness.primary
        self.harness.execute(primary, f"CREATE TABLE {self.table} (id INT PRIMARY KEY, at FLOAT)")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        with contextlib.suppress(Exception):
            self.harness.execute(self.harness.primary, f"DROP TABLE {self.table}")

    def _connect(self) -> Any:
        kwargs = self.harness.connect_kwargs(self.harness.primary, via_proxy=False, admin=True)
        if self.harness.driver == "psycopg":
            import psycopg

            return psycopg.connect(**kwargs, autocommit=True)
        import pymysql

        return pymysql.connect(**kwargs, autocommit=True)

    def _run(self) -> None:
        with contextlib.closing(self._connect()) as conn:
            cur = conn.cursor()
            while not self._stop.wait(self.interval):
                try:
                    cur.execute(
                        f"INSERT INTO {self.table} (id, at) VALUES (%s, %s)",
                        (self.writes, time.time()),
                    )
                    self.writes += 1
                except Exception as exc:  # reported by the test, never silently
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    return


@contextlib.contextmanager
def slowed(nodes: list[TestNode], per_direction: float) -> Iterator[None]:
    """Delay every chunk through these nodes' proxies (``2 * per_direction`` a round trip);
    the fixtures' heal() resets proxies, this also does it at once."""
    for node in nodes:
        node.proxy.set_delay(per_direction)
    try:
        yield
    finally:
        for node in nodes:
            node.proxy.set_delay(0.0)


def describe_nodes(name: str) -> list[dict[str, Any]]:
    """A compact view of every node's stats, for assertion messages."""
    keep = ("name", "state", "role", "connects", "connect_errors", "latency_ms", "lag_s")
    return [
        {k: v for k, v in n.as_dict().items() if k in keep}
        for n in clusterdb.stats.snapshot(name).nodes
    ]
