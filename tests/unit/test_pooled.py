"""Connections after connect() (issue 13), with no server: the tag each connection carries
(node_of), fits() following drain and registration, how each driver classifies errors seen on
an established connection, and report_error() feeding them back."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pymysql
import pytest
from test_monitor import StandIn, options, wait_for

import clusterdb
from clusterdb.drivers import get_adapter
from clusterdb.runtime import process
from clusterdb.runtime.monitor import Monitor
from clusterdb.runtime.pooled import tag


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[str]:
    """Cluster "pooled-lite": two sqlite files, each holding a row naming its node."""
    nodes = []
    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            conn.execute("CREATE TABLE whoami (name TEXT)")
            conn.execute("INSERT INTO whoami VALUES (?)", (name,))
        nodes.append({"name": name, "dsn": str(tmp_path / f"{name}.db")})
    clusterdb.register("pooled-lite", driver=sqlite3, nodes=nodes, monitor=False)
    yield "pooled-lite"
    if "pooled-lite" in clusterdb.clusters():
        clusterdb.unregister("pooled-lite")


def test_every_connection_names_its_node(lite: str) -> None:
    for _ in range(10):
        conn = clusterdb.connect(lite)
        (name,) = conn.execute("SELECT name FROM whoami").fetchone()
        assert clusterdb.node_of(conn) == clusterdb.NodeRef(lite, name)
        assert isinstance(conn, sqlite3.Connection)
        conn.close()
    assert clusterdb.node_of(object()) is None
    assert clusterdb.node_of(sqlite3.connect(":memory:")) is None


def test_fits_follows_drain_and_registration(lite: str) -> None:
    conn = clusterdb.connect(lite)
    ref = clusterdb.node_of(conn)
    assert ref is not None
    assert clusterdb.fits(conn) and clusterdb.fits(conn, "primary")  # sqlite: role unknown
    clusterdb.drain(lite, ref.node)
    assert not clusterdb.fits(conn)
    clusterdb.undrain(lite, ref.node)
    assert clusterdb.fits(conn)
    with pytest.raises(clusterdb.ConfigError, match="role must be one of"):
        clusterdb.fits(conn, "leader")  # type: ignore[arg-type]
    assert clusterdb.fits(object())  # nothing known against it
    clusterdb.unregister(lite)
    assert not clusterdb.fits(conn)  # its cluster is gone: recycle it
    conn.close()


def test_fits_costs_about_a_microsecond(lite: str) -> None:
    conn = clusterdb.connect(lite)
    clusterdb.fits(conn, "any")
    rounds = 20_000
    started = time.perf_counter()
    for _ in range(rounds):
        clusterdb.fits(conn, "any")
    per_call = (time.perf_counter() - started) / rounds
    conn.close()
    assert per_call < 20e-6, f"{per_call * 1e6:.2f} us per fits()"  # goal 2 us; 10x noise


class _Slotted:
    __slots__ = ("__weakref__",)


class _Sealed:
    __slots__ = ()


def test_objects_without_attributes_are_tagged_weakly_or_not_at_all(lite: str) -> None:
    cluster = process.get(lite)
    weak, sealed = _Slotted(), _Sealed()
    tag(weak, cluster.tags["a"])
    tag(sealed, cluster.tags["a"])
    assert clusterdb.node_of(weak) == (lite, "a")
    assert clusterdb.node_of(sealed) is None


class _Info:
    def __init__(self, standby: str | None) -> None:
        self.standby = standby

    def parameter_status(self, name: str) -> str | None:
        assert name == "in_hot_standby"
        return self.standby


class _PgConn:
    """What the psycopg adapter reads of a connection when it classifies an error."""

    def __init__(self, standby: str | None = "on", broken: bool = False) -> None:
        self.info = _Info(standby)
        self.closed = broken
        self.broken = broken


PSYCOPG_CASES = [
    (psycopg.errors.ReadOnlySqlTransaction("read-only"), _PgConn("on"), "read_only"),
    (psycopg.errors.ReadOnlySqlTransaction("read-only"), None, "read_only"),
    # A READ ONLY transaction on a primary is the session's doing, not the node's.
    (psycopg.errors.ReadOnlySqlTransaction("read-only"), _PgConn("off"), None),
    (psycopg.errors.AdminShutdown("terminating"), _PgConn(), "lost"),
    (psycopg.errors.ConnectionFailure("gone"), _PgConn(), "lost"),
    (psycopg.OperationalError("server closed the connection"), _PgConn(broken=True), "lost"),
    (psycopg.OperationalError("statement timeout?"), _PgConn(broken=False), None),
    (psycopg.errors.UniqueViolation("duplicate"), _PgConn(), None),
    (ValueError("not a driver error"), None, None),
]


@pytest.mark.parametrize(("exc", "conn", "kind"), PSYCOPG_CASES)
def test_psycopg_errors_are_classified(exc: BaseException, conn: Any, kind: str | None) -> None:
    assert get_adapter("psycopg").classify_error(exc, conn) == kind


PYMYSQL_CASES = [
    (
        pymysql.err.OperationalError(
            1290, "The MariaDB server is running with the --read-only option so it cannot ..."
        ),
        "read_only",
    ),
    (pymysql.err.InternalError(1836, "Running in read-only mode"), "read_only"),
    (
        pymysql.err.OperationalError(1290, "running with the --secure-file-priv option"),
        None,
    ),
    (pymysql.err.OperationalError(1792, "Cannot execute statement in a READ ONLY txn"), None),
    (pymysql.err.OperationalError(2013, "Lost connection to server during query"), "lost"),
    (pymysql.err.OperationalError(2006, "MySQL server has gone away"), "lost"),
    (pymysql.err.OperationalError(1927, "Connection was killed"), "lost"),
    (pymysql.err.InterfaceError(0, ""), "lost"),
    (pymysql.err.IntegrityError(1062, "Duplicate entry"), None),
    (RuntimeError("not a driver error"), None),
]


@pytest.mark.parametrize(("exc", "kind"), PYMYSQL_CASES)
def test_pymysql_errors_are_classified(exc: BaseException, kind: str | None) -> None:
    assert get_adapter("pymysql").classify_error(exc, None) == kind


class _Watcher:
    def __init__(self) -> None:
        self.checks = 0

    def watch(self, cluster: Any) -> None: ...
    def unwatch(self, cluster: Any) -> None: ...
    def node_failed(self, cluster: Any, node: str) -> None: ...

    def request_check(self, cluster: Any) -> None:
        self.checks += 1


class _Conn:
    """Stands for a driver connection: takes attributes, as psycopg's and PyMySQL's do."""

    info = _Info("on")
    closed = broken = False


def test_report_error_marks_the_node_and_asks_for_a_check() -> None:
    nodes = [{"name": n, "host": "127.0.0.1", "port": 1} for n in ("a", "b")]
    clusterdb.register("reported", driver="psycopg", nodes=nodes, monitor=True)
    cluster = process.get("reported")
    watcher = _Watcher()
    try:
        cluster.watch(watcher)
        conn = _Conn()
        tag(conn, cluster.tags["a"])
        assert not clusterdb.report_error(conn, psycopg.errors.UniqueViolation("dup"))
        assert watcher.checks == 0
        assert clusterdb.report_error(conn, psycopg.errors.ReadOnlySqlTransaction("ro"))
        assert cluster.describe().node("a").role == "replica"
        assert watcher.checks == 1
        assert clusterdb.report_error(conn, psycopg.errors.AdminShutdown("bye"))
        assert "bye" in (clusterdb.stats.snapshot("reported").node("a").last_error or "")
        assert watcher.checks == 2
        assert not clusterdb.report_error(object(), psycopg.errors.AdminShutdown("bye"))
    finally:
        process.unregister("reported")


def test_monitor_rechecks_every_node_on_request_within_the_rate_limit() -> None:
    cluster = StandIn("c", ("a", "b"), options(heartbeat=60.0))
    monitor = Monitor(process.spawn)
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("a") == 1 and cluster.count("b") == 1)
        asked = time.monotonic()
        for _ in range(20):  # a burst: every writer failed at once
            monitor.request_check(cluster)
        assert wait_for(lambda: cluster.count("a") >= 2 and cluster.count("b") >= 2, 2.0)
        first = min(t for n, t in cluster.calls[2:])
        assert first - asked < 0.5
        time.sleep(0.5)
        # The burst made one check now and one coalesced check 0.1 s later, no more.
        assert cluster.count("a") <= 3 and cluster.count("b") <= 3
    finally:
        monitor.stop()


def test_a_check_asked_for_while_a_probe_runs_probes_again_after_it() -> None:
    release = threading.Event()
    cluster = StandIn("c", ("a",), options(heartbeat=60.0), block=release)
    monitor = Monitor(process.spawn)
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.in_flight == 1)
        monitor.request_check(cluster)  # the probe in flight may have read the old role
        release.set()
        assert wait_for(lambda: cluster.count("a") >= 2, 2.0)
    finally:
        release.set()
        monitor.stop()
