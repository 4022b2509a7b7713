"""Helpers shared by the connect, stats and canary server tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import clusterdb
from clusterdb.drivers.base import ConnectArgs, DriverAdapter, Pending
from clusterdb.runtime import process
from clusterdb.stats import ClusterStats
from clusterdb.testing.cluster import Cluster, TestNode


@contextmanager
def registered(harness: Cluster, **options: Any) -> Iterator[str]:
    """A uniquely named clusterdb cluster over every node of ``harness`` (through proxies).

    ``options`` go to clusterdb.register() (clusterdb options and driver keywords alike).
    """
    name = f"t-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {
        **harness.register_kwargs(),
        "monitor": False,  # no background probe may open connections behind a test's back
    }
    settings.update(options)
    clusterdb.register(name, **settings)
    try:
        yield name
    finally:
        clusterdb.unregister(name)


def wait_for(check: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def settled(name: str, timeout: float = 20.0) -> ClusterStats:
    """The stats of ``name`` once no attempt is pending (late losers have recorded theirs)."""
    assert wait_for(
        lambda: not any(n.pending for n in clusterdb.stats.snapshot(name).nodes), timeout
    ), f"attempts of {name} still pending after {timeout} s"
    return clusterdb.stats.snapshot(name)


def warm_up_until_first(name: str, first: str, connects: int = 100) -> None:
    """Connect until ``first`` is ranked alone ahead of every other node of ``name``.

    Selection spreads connects among nodes within a latency window of the fastest; a node
    estimated over twice as slow is outside it, so the next plan starts with ``first``, once
    the node is off trial (it has had the few connects a new estimate gets).
    """
    cluster = process.get(name)
    policy = cluster.options.selection

    def alone_ahead() -> bool:
        desc = cluster.describe()
        lead = desc.node(first).latency
        others = [n for n in desc.nodes if n.name != first]
        return lead is not None and all(
            n.latency is not None and n.latency > 2 * lead + 0.002 and not policy.on_trial(n)
            for n in others
        )

    for _ in range(connects):
        clusterdb.connect(name).close()
        settled(name)
        if alone_ahead():
            return
    raise AssertionError(f"{first} never ranked alone first: {process.get(name).describe()}")


def attempt_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("clusterdb-connect-")]


def whoami(harness: Cluster, conn: Any) -> str:
    cur = conn.cursor()
    cur.execute(harness.WHOAMI_SQL)
    row = cur.fetchone()
    cur.close()
    assert row is not None
    return str(row[0])


def app_connections(harness: Cluster, node: TestNode) -> int:
    """Server-side sessions of the application user on ``node`` (asked directly, as admin)."""
    if harness.driver == "psycopg":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
    else:
        sql = "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = %s"
    return int(harness.execute(node, sql, (harness.user,))[0][0])


def deaf_start(adapter: DriverAdapter, target: ConnectArgs, node: TestNode) -> Pending:
    """``adapter.start()`` on ``node`` once its proxy has gone deaf: a Pending attempt, handed
    over within the patience (0.05 s), not at the 5 s timeout."""
    node.proxy.set_mode("deaf")
    started = time.monotonic()
    pending = adapter.start(target, {}, 5.0, 0.05)
    assert isinstance(pending, Pending)
    assert time.monotonic() - started < 0.5
    return pending
