"""The process's state (clusterdb.runtime.process): close() leaves no thread, one fork hook and
one exit hook, probe_all. sqlite3 clusters: no server."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import clusterdb
from clusterdb.runtime import process

PACKAGE = Path(clusterdb.__file__).parent


def ours() -> list[str]:
    """The library's threads (a test harness's proxies, kept by session fixtures, are not)."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("clusterdb-") and not t.name.startswith("clusterdb-testing")
    ]


@pytest.fixture
def busy() -> Iterator[str]:
    """Cluster "busy": three in-memory sqlite nodes, watched by the monitor."""
    clusterdb.register("busy", driver=sqlite3, nodes=[":memory:"] * 3, heartbeat=0.05)
    yield "busy"
    clusterdb.unregister("busy")


def test_close_after_heavy_use_leaves_no_clusterdb_thread(busy: str) -> None:
    def connect_many() -> None:
        for _ in range(20):
            clusterdb.connect(busy).close()

    users = [threading.Thread(target=connect_many) for _ in range(8)]
    for user in users:
        user.start()
    for user in users:
        user.join(30)
    clusterdb.probe(busy)
    assert process.monitor().running
    assert any(name == "clusterdb-worker" for name in ours())  # idle workers, kept warm
    assert clusterdb.close(10) is True
    assert ours() == []


def test_after_close_connect_and_the_monitor_start_again(busy: str) -> None:
    clusterdb.connect(busy).close()
    stopped = process.monitor()
    assert clusterdb.close(10)
    clusterdb.connect(busy).close()
    assert process.monitor() is not stopped
    assert process.monitor().running and not stopped.running
    assert clusterdb.close(10)
    assert ours() == []


def test_probe_all_probes_every_node_and_waits_for_them(busy: str) -> None:
    cluster = process.get(busy)
    process.probe_all(cluster, timeout=10)
    assert [n.probes >= 1 for n in cluster.stats_snapshot().nodes] == [True] * 3


def test_probe_all_is_bounded_by_its_timeout(busy: str) -> None:
    cluster = process.get(busy)
    gate = threading.Event()
    cluster.probe = lambda node: gate.wait(5)  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        process.probe_all(cluster, timeout=0.1)
        assert time.monotonic() - started < 1.0  # not the 5 s the probes hang
    finally:
        gate.set()
    assert process.pool().wait(10)


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (r"os\.register_at_fork\(", "runtime/process.py"),
        (r"atexit\.register\(", "runtime/process.py"),
    ],
)
def test_one_fork_hook_and_one_exit_hook_in_the_package(call: str, where: str) -> None:
    found = [
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "testing" not in path.relative_to(PACKAGE).parts
        for _ in re.finditer(call, path.read_text())
    ]
    assert found == [where]
