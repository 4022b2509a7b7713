"""runtime.connect.connect() with a driver that starts inline: the first attempt in the calling
thread, and no race at all when it connects to a node of known role (PyMySQL's usual case).

The driver is sqlite3 (a real database, one file per node) behind an adapter that starts
inline: per node, ``start`` connects, raises, or hands back a Pending attempt.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from clusterdb.config import cluster_from_kwargs
from clusterdb.drivers.base import ConnectArgs, nothing
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.errors import AllNodesFailed
from clusterdb.runtime import process
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect

pytestmark = pytest.mark.usefixtures("no_thread_left")

NODES = ("a", "b", "c")


class InlineSqlite(GenericAdapter):
    """sqlite3, begun in the caller's thread; ``outcomes[node]``: "connect" (the default),
    an exception to raise, or "pending" (a worker connects)."""

    starts_inline = True

    def __init__(self) -> None:
        super().__init__(sqlite3)
        self.outcomes: dict[str, Any] = {}
        self.started_in: dict[str, threading.Thread] = {}
        self.detected: list[str] = []

    def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        node = Path(str(target.args[0])).stem
        self.started_in[node] = threading.current_thread()
        idle()  # as the real adapters do, once the request is on its way
        outcome = self.outcomes.get(node, "connect")
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "pending":
            return super().start(target, overrides, timeout, patience)
        return self.connect(target, overrides, timeout)

    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        outcome = self.outcomes.get(Path(str(target.args[0])).stem)
        if isinstance(outcome, Exception):  # on a worker too
            raise outcome
        return super().connect(target, overrides, timeout)

    def detect_role(self, conn: Any) -> Any:
        self.detected.append("yes")
        return None


class FreeRoleSqlite(InlineSqlite):
    """As psycopg: the role is read on every connect, with no round trip."""

    role_is_free = True

    def __init__(self, roles: dict[str, Any]) -> None:
        super().__init__()
        self.roles = roles

    def detect_role(self, conn: Any) -> Any:
        name = Path(conn.execute("PRAGMA database_list").fetchone()[2]).stem
        self.detected.append(name)
        return self.roles[name]


def make_cluster(
    tmp_path: Path, *, known: bool = True, adapter: InlineSqlite | None = None
) -> tuple[Cluster, InlineSqlite]:
    specs = [{"name": n, "dsn": str(tmp_path / f"{n}.db")} for n in NODES]
    config = cluster_from_kwargs("fast", sqlite3, specs, {"monitor": False})
    adapter = adapter or InlineSqlite()
    cluster = Cluster(config, adapter)
    # What earlier connects and probes would have taught it: "a" fastest, every role known.
    for name, seconds in zip(NODES, (0.001, 0.02, 0.05), strict=True):
        for _ in range(3):
            cluster.attempt_started(name)
            cluster.record_success(name, seconds, "primary" if known else None, discarded=False)
    cluster.reset_stats()
    return cluster, adapter


def test_a_known_node_is_connected_in_the_calling_thread_without_a_race(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path)
    before = threading.active_count()
    conn = connect(cluster, "any", {})
    try:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        conn.close()
    assert adapter.started_in == {"a": threading.current_thread()}
    assert adapter.detected == []  # role known: no round trip to learn it
    assert threading.active_count() == before  # no worker was started
    snap = cluster.stats_snapshot()
    assert (snap.connects, snap.failures) == (1, 0)
    counts = {n.name: (n.connects, n.connect_errors, n.pending) for n in snap.nodes}
    assert counts == {"a": (1, 0, 0), "b": (0, 0, 0), "c": (0, 0, 0)}


def test_a_node_of_unknown_role_has_its_role_read(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path, known=False)
    connect(cluster, "any", {}).close()
    assert adapter.detected == ["yes"]
    snap = cluster.stats_snapshot()
    assert snap.connects == 1 and sum(n.pending for n in snap.nodes) == 0


def test_a_refusing_first_node_is_counted_and_the_next_one_connects(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path)
    adapter.outcomes["a"] = sqlite3.OperationalError("refused")
    conn = connect(cluster, "any", {})
    conn.close()
    snap = cluster.stats_snapshot()
    assert (snap.connects, snap.failures) == (1, 0)
    nodes = {n.name: n for n in snap.nodes}
    assert nodes["a"].connect_errors == 1 and nodes["a"].state == "down"
    assert nodes["b"].connects == 1
    assert all(n.pending == 0 for n in snap.nodes)


def test_a_silent_first_node_is_finished_by_a_worker(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path)
    adapter.outcomes["a"] = "pending"
    conn = connect(cluster, "any", {})
    conn.close()
    assert process.pool().wait(10)  # a hedged attempt may still be running: let it end
    snap = cluster.stats_snapshot()
    assert snap.connects == 1
    assert sum(n.connects - n.discarded for n in snap.nodes) == 1
    assert {n.name: n.connects for n in snap.nodes}["a"] == 1
    assert all(n.pending == 0 for n in snap.nodes)


def test_every_node_failing_raises_with_each_named(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path)
    for name in NODES:
        adapter.outcomes[name] = sqlite3.OperationalError(f"{name} refused")
    with pytest.raises(AllNodesFailed) as caught:
        connect(cluster, "any", {})
    assert all(f"{name} refused" in str(caught.value) for name in NODES)
    snap = cluster.stats_snapshot()
    assert (snap.connects, snap.failures) == (0, 1)
    assert all(n.pending == 0 and n.connect_errors == 1 for n in snap.nodes)


def test_an_interrupt_in_the_first_attempt_propagates_and_leaves_nothing_pending(
    tmp_path: Path,
) -> None:
    cluster, adapter = make_cluster(tmp_path)
    adapter.outcomes["a"] = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        connect(cluster, "any", {})
    snap = cluster.stats_snapshot()
    assert (snap.connects, snap.failures) == (0, 1)
    nodes = {n.name: n for n in snap.nodes}
    assert nodes["a"].connect_errors == 0 and nodes["a"].state == "up"  # not its failure
    assert all(n.pending == 0 for n in snap.nodes)


def test_a_role_read_for_free_that_fits_wins_outright(tmp_path: Path) -> None:
    adapter = FreeRoleSqlite({"a": "replica", "b": "replica", "c": "primary"})
    cluster, _ = make_cluster(tmp_path, adapter=adapter)
    before = threading.active_count()
    connect(cluster, "any", {}).close()
    assert adapter.detected == ["a"] and threading.active_count() == before
    nodes = {n.name: n for n in cluster.stats_snapshot().nodes}
    assert nodes["a"].role == "replica"  # learned from this connect (it was "primary")
    assert (nodes["a"].connects, nodes["a"].discarded, nodes["a"].pending) == (1, 0, 0)


def test_a_role_read_for_free_that_does_not_fit_goes_to_the_race(tmp_path: Path) -> None:
    adapter = FreeRoleSqlite({"a": "replica", "b": "primary", "c": "primary"})
    cluster, _ = make_cluster(tmp_path, adapter=adapter)
    conn = connect(cluster, "primary", {})
    conn.close()
    assert process.pool().wait(10)
    snap = cluster.stats_snapshot()
    nodes = {n.name: n for n in snap.nodes}
    assert (nodes["a"].connects, nodes["a"].discarded) == (1, 1)  # a replica: closed unused
    assert nodes["a"].role == "replica"
    assert sum(n.connects - n.discarded for n in snap.nodes) == 1 and snap.connects == 1
    assert all(n.pending == 0 for n in snap.nodes)


def test_a_won_connect_is_counted_by_the_next_attempt_or_the_first_reader(tmp_path: Path) -> None:
    cluster, _ = make_cluster(tmp_path)
    connect(cluster, "any", {}).close()
    assert len(cluster._outbox) == 1  # queued: no lock taken on the way out
    connect(cluster, "any", {}).close()
    assert len(cluster._outbox) == 1  # the second attempt did the first's while it started
    snap = cluster.stats_snapshot()  # a reader does the rest first
    assert not cluster._outbox
    assert snap.connects == 2 and sum(n.connects for n in snap.nodes) == 2
    assert all(n.pending == 0 for n in snap.nodes)
    assert snap.node("a").last_success_at is not None


def test_a_connect_that_changes_a_node_is_counted_at_once(tmp_path: Path) -> None:
    # Queued bookkeeping only counts and measures: a node coming off trial, changing role or
    # coming up is recorded under the lock before connect() returns.
    adapter = FreeRoleSqlite({"a": "replica", "b": "replica", "c": "primary"})
    cluster, _ = make_cluster(tmp_path, adapter=adapter)
    connect(cluster, "any", {}).close()  # "a" was known as a primary
    assert not cluster._outbox and cluster._nodes["a"].role == "replica"
    connect(cluster, "any", {}).close()  # nothing changes now: queued
    assert len(cluster._outbox) == 1
    cluster.attempt_started("b")
    cluster.record_failure("b", OSError("refused"))  # a change: the queue is done first
    assert not cluster._outbox and cluster._nodes["a"].connects == 2


def test_a_forked_child_counts_the_connects_queued_before_the_fork(tmp_path: Path) -> None:
    cluster, _ = make_cluster(tmp_path)
    connect(cluster, "any", {}).close()
    assert len(cluster._outbox) == 1  # queued when the process forks
    pid = os.fork()
    if pid == 0:  # the child: the parent's connect counted once, nothing left pending
        code = 1
        try:
            cluster.after_fork_in_child()  # what the process's fork hook does
            connect(cluster, "any", {}).close()
            snap = cluster.stats_snapshot()
            pending = sum(n.pending for n in snap.nodes)
            if (snap.connects, sum(n.connects for n in snap.nodes), pending) == (2, 2, 0):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    snap = cluster.stats_snapshot()  # the parent's own count is untouched by the child's
    assert (snap.connects, sum(n.pending for n in snap.nodes)) == (1, 0)
