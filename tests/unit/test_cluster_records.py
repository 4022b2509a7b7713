"""Cluster applies node transitions under its lock and logs their events after it; the probe is
a value (probe_once) that Cluster.probe records; driver binding happens before construction."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import pytest

from clusterdb.config import cluster_from_kwargs
from clusterdb.drivers import get_adapter
from clusterdb.drivers.bind import bind_nodes
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.errors import ConfigError
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.probe import probe_once

NODES = ("a", "b")


class Watching:
    """A stand-in monitor that records the nodes reported failed."""

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.checks = 0

    def watch(self, cluster: Any) -> None:
        pass

    def unwatch(self, cluster: Any) -> None:
        pass

    def node_failed(self, cluster: Any, node: str) -> None:
        self.failed.append(node)

    def request_check(self, cluster: Any) -> None:
        self.checks += 1


def make_cluster(**options: Any) -> Cluster:
    specs = [{"name": n, "dsn": ":memory:"} for n in NODES]
    return Cluster(cluster_from_kwargs("records", sqlite3, specs, options), GenericAdapter(sqlite3))


def connected(cluster: Cluster, node: str, role: str = "primary") -> None:
    cluster.attempt_started(node)
    cluster.record_success(node, 0.002, role, discarded=False)  # type: ignore[arg-type]


def test_a_lost_connection_takes_the_node_down_and_tells_the_watcher_once() -> None:
    cluster, watcher = make_cluster(), Watching()
    cluster.watch(watcher)
    connected(cluster, "a")
    cluster.record_lost("a", OSError("server closed the connection"))
    cluster.record_lost("a", OSError("broken pipe"))  # already down: no news
    stats = cluster.stats_snapshot().node("a")
    assert (stats.state, stats.connect_errors) == ("down", 0)
    assert stats.last_error == "OSError: broken pipe"
    assert watcher.failed == ["a"]


def test_a_failure_tells_the_watcher_when_the_node_goes_down() -> None:
    cluster, watcher = make_cluster(), Watching()
    cluster.watch(watcher)
    for _ in range(2):
        cluster.attempt_started("b")
        cluster.record_failure("b", OSError("refused"))
    assert watcher.failed == ["b"]
    assert cluster.stats_snapshot().node("b").connect_errors == 2


def test_a_read_only_primary_is_no_longer_planned_for_writes() -> None:
    cluster = make_cluster()
    connected(cluster, "a", "primary")
    connected(cluster, "b", "replica")
    chosen, _ = cluster.begin("primary")
    cluster.attempt_abandoned(chosen.nodes[0])
    assert chosen.nodes == ("a",)
    cluster.record_read_only("a")
    assert cluster.describe().node("a").role == "replica"
    chosen, _ = cluster.begin("primary")  # the kept ranking went with the role
    assert chosen.nodes == () and "a" in chosen.rejected


def test_events_are_logged_after_the_lock_is_released(caplog: pytest.LogCaptureFixture) -> None:
    cluster = make_cluster()
    held: list[bool] = []

    class Probe(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            held.append(cluster._lock.locked())

    handler = Probe(logging.DEBUG)
    logger = logging.getLogger("clusterdb")
    logger.addHandler(handler)
    try:
        caplog.set_level(logging.DEBUG, logger="clusterdb")
        connected(cluster, "a")
        cluster.record_lost("a", OSError("reset"))
        cluster.drain("b")
        cluster.record_read_only("a")
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in caplog.records]
    assert any("node a (:memory:) is down: OSError: reset" in m for m in messages), messages
    assert any("node b drained" in m for m in messages), messages
    assert any("node a is no longer primary: now replica" in m for m in messages), messages
    assert held and not any(held)


def test_probe_once_is_a_value_and_probe_records_it() -> None:
    cluster = make_cluster()
    outcome = probe_once(cluster.adapter, cluster.target("a"), 1.0)
    assert outcome.ok and outcome.error is None
    assert outcome.latency is not None and outcome.rtt is not None
    assert cluster.probe("a") is True
    stats = cluster.stats_snapshot().node("a")
    assert (stats.state, stats.probes, stats.probe_errors) == ("up", 1, 0)


def test_a_probe_that_fails_is_recorded_with_its_error() -> None:
    specs = [{"name": "a", "dsn": "/nonexistent/dir/db.sqlite"}]
    cluster = Cluster(cluster_from_kwargs("gone", sqlite3, specs, {}), GenericAdapter(sqlite3))
    outcome = probe_once(cluster.adapter, cluster.target("a"), 1.0)
    assert not outcome.ok and isinstance(outcome.error, sqlite3.OperationalError)
    cluster.record_probe("a", outcome)
    stats = cluster.stats_snapshot().node("a")
    assert (stats.state, stats.probes, stats.probe_errors) == ("down", 1, 1)
    assert stats.last_error is not None and "OperationalError" in stats.last_error
    assert cluster.probe("a") is False


def test_bind_nodes_names_the_refused_node_by_its_key_path() -> None:
    specs = [{"name": "ok", "host": "h"}, {"name": "bad", "host": "h"}]
    config = cluster_from_kwargs("p", "psycopg", specs, {"dbnmae": "x"})
    with pytest.raises(ConfigError, match=r"clusters\.p\.nodes\[0\].*node 'ok'.*dbnmae"):
        bind_nodes(config, get_adapter("psycopg"))


def test_bound_targets_can_be_given_to_the_cluster() -> None:
    specs = [{"name": n, "dsn": ":memory:"} for n in NODES]
    config = cluster_from_kwargs("bound", sqlite3, specs, {"pipeline_handshake": False})
    adapter = GenericAdapter(sqlite3)
    targets = bind_nodes(config, adapter)
    assert [t.pipeline_handshake for t in targets] == [False, False]
    cluster = Cluster(config, adapter, targets)
    assert cluster.target("b") is targets[1]
