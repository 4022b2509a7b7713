"""Replication lag on real servers (issue 4): a replica delayed beyond ``max_lag`` is skipped
for ``"replica"`` and ``"prefer-replica"`` and used again once it catches up; the lag the
monitor reads (stats ``lag_s``) is the delay the harness set, on PostgreSQL and MariaDB.

What each server reports while a replica applies changes ``D`` seconds late and the primary
writes every 0.1 s:

* PostgreSQL (``recovery_min_apply_delay``): WAL arrives at once and is replayed ``D`` s
  late; the probe reads the age of the last transaction replayed, ``D`` plus at most one
  write interval.
* MariaDB 10.11 (``MASTER_DELAY``): ``Seconds_Behind_Master`` is the age of the event the SQL
  thread is waiting to apply, in whole seconds: ``D - 1`` or ``D`` (not 0 while it waits).
"""

from __future__ import annotations

import logging
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from connect_support import registered
from health_support import Writer, describe_nodes, land, node_stats, until

import clusterdb
from clusterdb.drivers.pymysql import PyMySQLAdapter
from clusterdb.testing.cluster import Cluster, TestNode
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

MAX_LAG = 1.0
DELAY = 3.0
HEARTBEAT = 0.25


def lag(name: str, node: TestNode) -> float | None:
    return node_stats(name, node.name).lag_s


@contextmanager
def lagging(harness: Cluster, name: str, node: TestNode) -> Iterator[list[float]]:
    """Delay ``node`` by DELAY s under a steady write load, until the monitor reads a lag
    beyond MAX_LAG; yields the readings taken once the lag is steady (at least DELAY + 1 s
    after the delay was set)."""
    with Writer(harness, interval=0.1) as writer:
        harness.set_replication_delay(node, DELAY)
        delayed = time.monotonic()
        beyond = until(lambda: (lag(name, node) or 0.0) > MAX_LAG, timeout=DELAY + 10)
        assert beyond is not None, describe_nodes(name)
        readings: list[float] = []
        while time.monotonic() - delayed < DELAY + 2.0:
            time.sleep(HEARTBEAT)
            if time.monotonic() - delayed > DELAY + 1.0:
                reading = lag(name, node)
                assert reading is not None, describe_nodes(name)
                readings.append(reading)
        assert not writer.errors, writer.errors
        assert writer.writes >= 10
        yield readings
    assert not writer.errors, writer.errors


def _caught_up(harness: Cluster, name: str, node: TestNode) -> float:
    """Remove the delay; seconds until the monitor reads the lag back within MAX_LAG.

    A reading of None does not count: MariaDB reports no lag while the harness restarts the
    replication threads to change MASTER_DELAY, which is "unknown", not "caught up"."""
    harness.set_replication_delay(node, 0)
    removed = time.monotonic()

    def back_within() -> bool:
        reading = lag(name, node)
        return reading is not None and reading <= MAX_LAG

    took = until(back_within, timeout=10)
    assert took is not None, describe_nodes(name)
    return time.monotonic() - removed


@pytest.mark.postgres
def test_lagging_replica_is_skipped_until_it_catches_up_postgres(
    pg_cluster: PostgresCluster,
) -> None:
    primary, late, other = pg_cluster.nodes
    with registered(pg_cluster, monitor=True, heartbeat=HEARTBEAT, max_lag=MAX_LAG) as name:
        land(pg_cluster, name)
        assert until(lambda: lag(name, late) is not None, timeout=10) is not None
        assert (lag(name, late) or 0.0) <= MAX_LAG
        with lagging(pg_cluster, name, late) as readings:
            steady = statistics.median(readings)
            print(f"\npostgres: delay {DELAY} s, lag_s read {readings}")
            assert DELAY - 0.5 <= steady <= DELAY + 1.5, readings
            assert {land(pg_cluster, name, "replica") for _ in range(10)} == {other.name}
            assert {land(pg_cluster, name, "prefer-replica") for _ in range(10)} == {other.name}
            assert land(pg_cluster, name, "any") in {n.name for n in pg_cluster.nodes}
            back_in = _caught_up(pg_cluster, name, late)
        reading = lag(name, late)
        assert reading is not None and reading <= MAX_LAG
        used = until(lambda: land(pg_cluster, name, "replica") == late.name, timeout=10)
        print(f"postgres: lag back to {reading} s in {back_in:.2f} s, then used after {used} s")
        assert used is not None, describe_nodes(name)
        assert clusterdb.stats.snapshot(name).failures == 0
        assert lag(name, primary) is None  # a primary has no lag


@pytest.mark.mariadb
def test_lagging_replica_is_skipped_until_it_catches_up_mariadb(
    mariadb_cluster: MariaDBCluster,
) -> None:
    primary, late = mariadb_cluster.nodes
    with registered(mariadb_cluster, monitor=True, heartbeat=HEARTBEAT, max_lag=MAX_LAG) as name:
        land(mariadb_cluster, name)
        assert until(lambda: lag(name, late) is not None, timeout=10) is not None
        with lagging(mariadb_cluster, name, late) as readings:
            steady = statistics.median(readings)
            print(f"\nmariadb: delay {DELAY} s, lag_s read {readings}")
            assert DELAY - 1.5 <= steady <= DELAY + 1.0, readings
            # The only replica lags: "replica" has no node left, "prefer-replica" the primary.
            with pytest.raises(clusterdb.NoSuitableNode) as info:
                clusterdb.connect(name, role="replica")
            assert f"{late.name}: lag" in str(info.value) and "max_lag" in str(info.value)
            assert {land(mariadb_cluster, name, "prefer-replica") for _ in range(5)} == {
                primary.name
            }
            back_in = _caught_up(mariadb_cluster, name, late)
        reading = lag(name, late)
        assert reading is not None and reading <= MAX_LAG
        used = until(lambda: land(mariadb_cluster, name, "replica") == late.name, timeout=10)
        print(f"mariadb: lag back to {reading} s in {back_in:.2f} s, then used after {used} s")
        assert used is not None, describe_nodes(name)
        assert land(mariadb_cluster, name, "prefer-replica") == late.name
        assert lag(name, primary) is None


@pytest.mark.mariadb
def test_mariadb_user_without_slave_monitor_keeps_nodes_up_with_lag_unknown(
    mariadb_cluster: MariaDBCluster,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SHOW SLAVE STATUS needs SLAVE MONITOR, which application users often lack: the
    monitor still sees every node up with its role; only the lag is unknown."""
    user, password = f"nomon_{uuid.uuid4().hex[:6]}", uuid.uuid4().hex
    primary, replica = mariadb_cluster.nodes
    mariadb_cluster.execute(primary, f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        mariadb_cluster.execute(
            primary, f"GRANT ALL PRIVILEGES ON {mariadb_cluster.dbname}.* TO '{user}'@'%'"
        )
        mariadb_cluster.wait_caught_up()
        caplog.set_level(logging.WARNING, logger="clusterdb")
        monkeypatch.setattr(PyMySQLAdapter, "_warned_no_lag", False)  # warned once a process
        options = {"user": user, "password": password, "heartbeat": HEARTBEAT}
        with registered(mariadb_cluster, monitor=True, max_lag=MAX_LAG, **options) as name:
            land(mariadb_cluster, name)

            def probed_twice() -> bool:
                return all(n.probes >= 2 for n in clusterdb.stats.snapshot(name).nodes)

            assert until(probed_twice, timeout=10) is not None
            snap = clusterdb.stats.snapshot(name)
            assert [(n.state, n.role, n.lag_s, n.probe_errors) for n in snap.nodes] == [
                ("up", "primary", None, 0),
                ("up", "replica", None, 0),
            ]
            assert land(mariadb_cluster, name, "replica") == replica.name
        warnings = [r.getMessage() for r in caplog.records if "SLAVE MONITOR" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert not [r for r in caplog.records if "is down" in r.getMessage()]
    finally:
        mariadb_cluster.execute(primary, f"DROP USER '{user}'@'%'")


@pytest.mark.mariadb
def test_mariadb_replica_whose_replication_stopped_is_skipped_under_max_lag(
    mariadb_cluster: MariaDBCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """A stopped SQL thread (a replication error, a STOP SLAVE) applies nothing more, and
    MariaDB then reports no lag at all: the replica must not pass for "lag unknown, fine"."""
    primary, replica = mariadb_cluster.nodes
    caplog.set_level(logging.INFO, logger="clusterdb")
    with (
        registered(mariadb_cluster, monitor=True, heartbeat=HEARTBEAT, max_lag=MAX_LAG) as name,
        registered(mariadb_cluster, monitor=True, heartbeat=HEARTBEAT) as unbounded,
    ):
        land(mariadb_cluster, name)
        land(mariadb_cluster, unbounded)
        assert until(lambda: lag(name, replica) is not None, timeout=10) is not None
        assert land(mariadb_cluster, name, "replica") == replica.name
        mariadb_cluster.execute(replica, "STOP SLAVE SQL_THREAD")
        try:
            stopped = until(lambda: node_stats(name, replica.name).replication_stopped, 10)
            assert stopped is not None, describe_nodes(name)
            assert lag(name, replica) is None
            with pytest.raises(clusterdb.NoSuitableNode) as info:
                clusterdb.connect(name, role="replica")
            assert f"{replica.name}: replication stopped" in str(info.value)
            assert land(mariadb_cluster, name, "prefer-replica") == primary.name
            # Without max_lag a stale replica is still a replica: the user accepts any lag.
            seen = until(lambda: node_stats(unbounded, replica.name).replication_stopped, 10)
            assert seen is not None, describe_nodes(unbounded)
            assert land(mariadb_cluster, unbounded, "replica") == replica.name
            assert any(
                "replication stopped" in r.getMessage() and r.levelno == logging.WARNING
                for r in caplog.records
            )
        finally:
            mariadb_cluster.execute(replica, "START SLAVE SQL_THREAD")
        running = until(lambda: not node_stats(name, replica.name).replication_stopped, 10)
        assert running is not None, describe_nodes(name)
        used = until(lambda: land(mariadb_cluster, name, "replica") == replica.name, 10)
        assert used is not None, describe_nodes(name)
        assert any("replication running again" in r.getMessage() for r in caplog.records)
