"""sqlite3 as a clusterdb driver, end to end, with no server at all (the embedded case)."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import clusterdb
from clusterdb.errors import AllNodesFailed, ConfigError, UnknownClusterError
from clusterdb.runtime import process


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[str]:
    """Cluster "lite": two database files, each holding a row naming its node."""
    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            conn.execute("CREATE TABLE whoami (name TEXT)")
            conn.execute("INSERT INTO whoami VALUES (?)", (name,))
    clusterdb.register(
        "lite", driver=sqlite3, nodes=[str(tmp_path / "a.db"), str(tmp_path / "b.db")]
    )
    yield "lite"
    clusterdb.unregister("lite")


def settle(name: str, timeout: float = 10.0) -> clusterdb.stats.ClusterStats:
    deadline = time.monotonic() + timeout
    while True:
        snap = clusterdb.stats.snapshot(name)
        if not any(n.pending for n in snap.nodes):
            return snap
        assert time.monotonic() < deadline, "attempts still pending"
        time.sleep(0.01)


def test_connect_returns_a_usable_sqlite_connection(lite: str) -> None:
    conn = clusterdb.connect(lite)
    try:
        assert isinstance(conn, sqlite3.Connection)
        # Opened in a worker thread, used here: check_same_thread=False made that possible.
        (name,) = conn.execute("SELECT name FROM whoami").fetchone()
        assert name in ("a", "b")
    finally:
        conn.close()

    snap = settle(lite)
    assert snap.driver == "sqlite3"
    assert (snap.connects, snap.failures) == (1, 0)
    # Nothing was known: both nodes were raced, one connection won, the other was discarded.
    assert [(n.name, n.connects) for n in snap.nodes] == [("node1", 1), ("node2", 1)]
    assert sum(n.discarded for n in snap.nodes) == 1
    assert all(n.state == "up" and n.latency_ms is not None for n in snap.nodes)
    assert all(n.last_success_at is not None and n.last_error is None for n in snap.nodes)


def test_stats_count_every_connect_and_reset(lite: str) -> None:
    for _ in range(5):
        clusterdb.connect(lite).close()
    snap = settle(lite)
    assert snap.connects == 5
    assert sum(n.connects - n.discarded for n in snap.nodes) == 5

    clusterdb.stats.reset(lite)
    snap = clusterdb.stats.snapshot(lite)
    assert (snap.connects, snap.failures) == (0, 0)
    assert all(n.connects == n.connect_errors == n.discarded == 0 for n in snap.nodes)
    assert all(n.latency_ms is not None for n in snap.nodes)  # estimates are kept


def test_an_unopenable_node_counts_an_error_but_connect_succeeds(tmp_path: Path) -> None:
    good = tmp_path / "good.db"
    bad = tmp_path / "no-such-dir" / "bad.db"
    clusterdb.register("half", driver="sqlite3", nodes=[str(bad), str(good)])
    try:
        conn = clusterdb.connect("half")
        conn.execute("SELECT 1")
        conn.close()
        snap = settle("half")
        broken, fine = snap.nodes
        assert (broken.state, broken.connect_errors, broken.connects) == ("down", 1, 0)
        assert broken.last_error == "OperationalError: unable to open database file"
        assert broken.last_error_at is not None and broken.down_since is not None
        assert (fine.state, fine.connects, fine.discarded) == ("up", 1, 0)
        assert snap.connects == 1
    finally:
        clusterdb.unregister("half")


def test_every_node_unopenable_raises_all_nodes_failed(tmp_path: Path) -> None:
    nodes = [str(tmp_path / "x" / "1.db"), str(tmp_path / "y" / "2.db")]
    clusterdb.register("broken", driver=sqlite3, nodes=nodes)
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            clusterdb.connect("broken")
        assert isinstance(info.value, AllNodesFailed)
        assert "node1: OperationalError: unable to open database file" in str(info.value)
        assert "node2: OperationalError: unable to open database file" in str(info.value)
        assert clusterdb.stats.snapshot("broken").failures == 1
    finally:
        clusterdb.unregister("broken")


def test_connections_work_from_many_threads(lite: str) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                conn = clusterdb.connect(lite)
                conn.execute("SELECT name FROM whoami").fetchone()
                conn.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    snap = settle(lite)
    assert snap.connects == 40
    assert sum(n.connects - n.discarded for n in snap.nodes) == 40


def test_registry_errors_name_the_cluster(lite: str) -> None:
    assert "lite" in clusterdb.clusters()
    with pytest.raises(UnknownClusterError, match=r"unknown cluster 'nope'.*'lite'"):
        clusterdb.connect("nope")
    with pytest.raises(ConfigError, match="connect_timeout"):
        clusterdb.connect(lite, connect_timeout=0)
    with pytest.raises(ConfigError, match="role"):
        clusterdb.connect(lite, role="leader")  # type: ignore[arg-type]
    with pytest.raises(clusterdb.InterfaceError, match="has no node 'zz'"):
        clusterdb.drain(lite, "zz")


def test_a_drained_node_gets_no_connection(lite: str) -> None:
    clusterdb.drain(lite, "node1")
    for _ in range(5):
        conn = clusterdb.connect(lite)
        assert conn.execute("SELECT name FROM whoami").fetchone() == ("b",)
        conn.close()
    snap = settle(lite)
    assert snap.node("node1").drained and snap.node("node1").connects == 0
    clusterdb.undrain(lite, "node1")
    assert not clusterdb.stats.snapshot(lite).node("node1").drained


def test_no_usable_node_raises_no_suitable_node(lite: str) -> None:
    clusterdb.drain(lite, "node1")
    clusterdb.drain(lite, "node2")
    with pytest.raises(sqlite3.OperationalError) as info:
        clusterdb.connect(lite)
    assert isinstance(info.value, clusterdb.NoSuitableNode)
    assert "node1: drained" in str(info.value) and "node2: drained" in str(info.value)
    assert clusterdb.stats.snapshot(lite).failures == 1


def test_a_forked_child_connects_although_a_lock_was_held_at_fork(lite: str) -> None:
    cluster = process.get(lite)
    # As if another thread was inside the cluster's and the registry's lock at fork time.
    with process._lock, cluster._lock:
        pid = os.fork()
        if pid == 0:  # the child: it must not wait for a lock no thread of its own holds
            code = 1
            try:
                conn = clusterdb.connect(lite, connect_timeout=5)
                conn.execute("SELECT name FROM whoami").fetchone()
                conn.close()
                clusterdb.register("child", driver=sqlite3, nodes=[":memory:"])
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 20
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child deadlocked on a lock inherited from the parent")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_a_driver_module_refuses_a_cluster_of_another_driver(lite: str) -> None:
    import clusterdb.psycopg
    import clusterdb.pymysql

    for module in (clusterdb.psycopg, clusterdb.pymysql):
        with pytest.raises(clusterdb.InterfaceError) as info:
            module.connect(lite)
        message = str(info.value)
        assert f"cluster {lite!r} uses the sqlite3 driver" in message
        assert f"clusterdb.connect({lite!r})" in message
    assert clusterdb.stats.snapshot(lite).connects == 0  # refused before any attempt
