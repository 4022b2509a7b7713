"""Membership at run time on sqlite3 "clusters" (no server): add_node, remove_node,
reload() and Cluster.set_nodes keep unchanged nodes' records; a removed node's late results
(attempt outcomes, queued returns, probes) are ignored without error and leave the in-flight
bookkeeping at zero; the monitor follows the list."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import clusterdb
from clusterdb.config import NodeEntry, cluster_from_kwargs
from clusterdb.core.membership import MembershipChange
from clusterdb.core.node_state import ProbeOutcome
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.errors import ConfigError, InterfaceError, OperationalError, UnknownClusterError
from clusterdb.runtime import process
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.monitor import Monitor


def make_cluster(tmp_path: Path, *names: str) -> Cluster:
    specs = [{"name": n, "dsn": str(tmp_path / f"{n}.db")} for n in names]
    config = cluster_from_kwargs("m", sqlite3, specs, {"monitor": False})
    return Cluster(config, GenericAdapter(sqlite3))


def entry(tmp_path: Path, name: str, file: str | None = None) -> NodeEntry:
    return NodeEntry(name=name, dsn=str(tmp_path / f"{file or name}.db"))


def connected(cluster: Cluster, node: str) -> None:
    cluster.attempt_started(node)
    cluster.record_success(node, 0.002, "primary", discarded=False)


def settled(cluster: Cluster) -> None:
    """No attempt counted anywhere: every late result consumed its count."""
    cluster.fold()
    assert (cluster._in_flight, cluster._stale) == (0, {})
    assert all(n.pending == 0 for n in cluster.stats_snapshot().nodes)


@pytest.fixture
def registered(tmp_path: Path) -> Iterator[str]:
    name = f"m-{uuid.uuid4().hex[:8]}"
    nodes = [{"name": n, "dsn": str(tmp_path / f"{n}.db")} for n in ("a", "b")]
    clusterdb.register(name, driver="sqlite3", nodes=nodes, monitor=False)
    try:
        yield name
    finally:
        clusterdb.unregister(name)


# -- set_nodes: the primitive --


def test_set_nodes_keeps_unchanged_records_and_starts_changed_ones_afresh(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b", "c")
    for node in ("a", "b", "c"):
        connected(cluster, node)
    kept = cluster._nodes["a"]
    before = cluster.stats_snapshot().node("a")
    change = cluster.set_nodes(
        [entry(tmp_path, "d"), entry(tmp_path, "a"), entry(tmp_path, "b", "elsewhere")]
    )
    assert change == MembershipChange(added=("d",), removed=("c",), changed=("b",))
    assert cluster.node_names == ("d", "a", "b")
    assert cluster._nodes["a"] is kept
    assert cluster.stats_snapshot().node("a") == before
    assert cluster.stats_snapshot().node("b").connects == 0  # changed: afresh
    assert cluster.describe().node("d").state == "unknown"
    assert cluster.set_nodes(cluster.config.nodes) == MembershipChange()  # idempotent
    settled(cluster)


def test_set_nodes_refuses_bad_lists_and_changes_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    with pytest.raises(ConfigError, match="would have no node left"):
        cluster.set_nodes([])
    with pytest.raises(ConfigError, match="duplicate node name 'a'"):
        cluster.set_nodes([entry(tmp_path, "a"), entry(tmp_path, "a", "x")])
    assert cluster.node_names == ("a", "b")


def test_set_nodes_adds_secrets_of_new_entries_to_the_redactor(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a")
    secret = NodeEntry(name="s", dsn=str(tmp_path / "s.db"), params={"password": "hunter2-x"})
    with pytest.raises(ConfigError) as caught:  # a duplicate name: refused, nothing leaked
        cluster.set_nodes([entry(tmp_path, "a"), secret, secret])
    assert "hunter2-x" not in str(caught.value)
    cluster.set_nodes([entry(tmp_path, "a"), secret])
    assert cluster.redactor.scrub("pw hunter2-x") == "pw ***"


# -- late results of a removed node --


def test_late_results_of_a_removed_node_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    connected(cluster, "a")
    connected(cluster, "b")
    plan, _ = cluster.begin("any", prefer="b")
    assert plan.nodes[0] == "b"
    assert cluster._nodes["b"].pending == 1
    cluster.attempt_started("b")  # a hedge on b too
    b_before = cluster._nodes["b"]
    a_before = cluster.stats_snapshot().node("a")
    cluster.remove_node("b")
    assert cluster._in_flight == 0 and cluster._stale == {"b": 2}
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    # Its outcomes arrive: a success and a failure; a hedge, a lost connection, a read-only
    # error, a discard, a probe: none raises, none counts anywhere.
    cluster.record_success("b", 0.003, "primary", discarded=False, returned=True)
    cluster.record_failure("b", OSError("late"))
    cluster.record_hedge("b", 0.5)
    cluster.record_lost("b", OSError("gone"))
    cluster.record_read_only("b")
    cluster.record_discarded("b")
    cluster.record_probe("b", ProbeOutcome(ok=True, latency=0.001, role="primary"))
    assert b_before.connects == 1 and b_before.connect_errors == 0
    assert cluster.node_names == ("a",)
    assert cluster.stats_snapshot().node("a") == a_before
    assert cluster.stats_snapshot().connects == 1  # the connect() that returned still counts
    assert not any("late" in r.getMessage() for r in caplog.records)
    settled(cluster)


def test_a_queued_return_of_a_node_removed_before_the_fold_is_only_counted(
    tmp_path: Path,
) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    connected(cluster, "a")
    connected(cluster, "b")
    cluster.begin("any", prefer="b")
    record = cluster._nodes["b"]  # read without the lock by record_returned() ...
    cluster.remove_node("b")  # ... the node removed meanwhile ...
    cluster._outbox.append((record, 0.001, time.monotonic(), time.time(), True))  # ... then queued
    cluster.fold()
    assert record.connects == 1
    assert cluster.stats_snapshot().connects == 1
    settled(cluster)


def test_an_attempt_begun_after_removal_fails_at_once_and_is_not_counted(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    plan, _ = cluster.begin("any")
    assert set(plan.nodes) == {"a", "b"}  # a race: both pending
    cluster.remove_node("b")
    cluster.attempt_started("b")  # the plan's next attempt, after the removal
    with pytest.raises(OperationalError, match="node 'b' was removed from cluster 'm'"):
        cluster.target("b")
    for _ in range(2):
        cluster.record_failure("b", OperationalError("removed"))
    cluster.record_success("a", 0.002, "primary", discarded=False)
    settled(cluster)


def test_a_name_removed_and_added_again_keeps_the_counts_straight(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    cluster.begin("any")  # a race: a and b pending
    cluster.remove_node("b")
    cluster.add_node({"name": "b", "dsn": str(tmp_path / "b2.db")})
    cluster.attempt_started("b")  # on the new b
    cluster.record_failure("b", OSError("old b"))  # the old attempt's late result
    cluster.record_success("b", 0.002, "primary", discarded=False)
    cluster.record_success("a", 0.002, "primary", discarded=False)
    settled(cluster)


def test_a_probe_of_a_changed_node_is_not_recorded_on_its_new_record(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    old = cluster._nodes["b"]
    cluster.set_nodes([entry(tmp_path, "a"), entry(tmp_path, "b", "moved")])
    cluster.record_probe("b", ProbeOutcome(ok=False, error=OSError("old address")), old)
    assert cluster.stats_snapshot().node("b").probes == 0
    assert cluster.probe("b") is True  # the new record's own probe counts
    assert cluster.stats_snapshot().node("b").probes == 1


def test_probing_a_removed_node_does_nothing(tmp_path: Path) -> None:
    cluster = make_cluster(tmp_path, "a", "b")
    cluster.remove_node("b")
    assert cluster.probe("b") is True
    assert [n.name for n in cluster.stats_snapshot().nodes] == ["a"]


# -- the public API --


def test_add_and_remove_node_keep_the_other_nodes_stats(registered: str, tmp_path: Path) -> None:
    for _ in range(10):
        clusterdb.connect(registered).close()
    before = {n.name: n for n in clusterdb.stats.snapshot(registered).nodes}
    assert clusterdb.add_node(registered, str(tmp_path / "c.db")) == "node3"
    assert clusterdb.add_node(registered, {"name": "d", "dsn": str(tmp_path / "d.db")}) == "d"
    after = {n.name: n for n in clusterdb.stats.snapshot(registered).nodes}
    assert list(after) == ["a", "b", "node3", "d"]
    assert (after["a"], after["b"]) == (before["a"], before["b"])
    clusterdb.remove_node(registered, "a")
    after = {n.name: n for n in clusterdb.stats.snapshot(registered).nodes}
    assert list(after) == ["b", "node3", "d"] and after["b"] == before["b"]
    landed = {clusterdb.node_of(clusterdb.connect(registered)).node for _ in range(60)}  # type: ignore[union-attr]
    assert "a" not in landed and landed <= {"b", "node3", "d"}


def test_a_connection_to_a_removed_or_changed_node_no_longer_fits(
    registered: str, tmp_path: Path
) -> None:
    cluster = process.get(registered)
    conns: dict[str, Any] = {}
    while len(conns) < 2:
        conn = clusterdb.connect(registered)
        conns[clusterdb.node_of(conn).node] = conn  # type: ignore[union-attr]
    clusterdb.probe(registered)
    assert clusterdb.fits(conns["a"]) and clusterdb.fits(conns["b"])
    clusterdb.remove_node(registered, "b")
    assert not clusterdb.fits(conns["b"])
    assert clusterdb.fits(conns["a"])
    cluster.set_nodes([NodeEntry(name="a", dsn=str(tmp_path / "a2.db"))])
    assert not clusterdb.fits(conns["a"])
    conns["b"].execute("select 1")  # open connections are left alone


ERRORS: list[tuple[str, Any, type[Exception], str]] = [
    ("add", {"name": "a", "dsn": ":memory:"}, ConfigError, "already has a node named 'a'"),
    ("add", {"name": "a", "dsn": ":memory:"}, ConfigError, "or remove_node("),
    ("add", {"name": "x", "port": "5432"}, ConfigError, "nodes[2].port: must be an integer"),
    ("add", 42, ConfigError, "nodes[2]: a node must be a mapping or a DSN string"),
    ("remove", "zz", InterfaceError, "has no node 'zz' (nodes: a, b): nothing removed"),
]


@pytest.mark.parametrize(("op", "arg", "error", "message"), ERRORS)
def test_clear_errors(registered: str, op: str, arg: Any, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        if op == "add":
            clusterdb.add_node(registered, arg)
        else:
            clusterdb.remove_node(registered, arg)
    assert message in str(caught.value)
    assert [n.name for n in clusterdb.stats.snapshot(registered).nodes] == ["a", "b"]


def test_the_last_node_and_an_unknown_cluster(registered: str) -> None:
    clusterdb.remove_node(registered, "a")
    with pytest.raises(InterfaceError, match=r"the last node of cluster .*add_node\("):
        clusterdb.remove_node(registered, "b")
    with pytest.raises(UnknownClusterError, match="unknown cluster 'nope'"):
        clusterdb.add_node("nope", ":memory:")
    with pytest.raises(UnknownClusterError, match="unknown cluster 'nope'"):
        clusterdb.remove_node("nope", "a")


def test_reload_keeps_unchanged_nodes_and_takes_new_options(tmp_path: Path) -> None:
    name = f"r{uuid.uuid4().hex[:8]}"
    file = tmp_path / "c.toml"

    def write(heartbeat: float, *nodes: tuple[str, str]) -> None:
        listed = ", ".join(f'{{ name = "{n}", dsn = "{tmp_path / f}.db" }}' for n, f in nodes)
        file.write_text(
            f'[clusters.{name}]\ndriver = "sqlite3"\nmonitor = false\nheartbeat = {heartbeat}\n'
            f"nodes = [{listed}]\n"
        )

    write(5.0, ("a", "a"), ("b", "b"), ("c", "c"))
    assert clusterdb.load_config(str(file)) == (name,)
    cluster = process.get(name)
    try:
        for _ in range(10):
            clusterdb.connect(name).close()
        before = clusterdb.stats.snapshot(name).node("a")
        write(2.0, ("a", "a"), ("c", "c2"), ("d", "d"))
        changes = clusterdb.reload(str(file))
        assert changes == {name: MembershipChange(("d",), ("b",), ("c",))}
        assert process.get(name) is cluster  # in place, not replaced
        assert cluster.options.heartbeat == 2.0
        assert clusterdb.stats.snapshot(name).node("a") == before
        assert clusterdb.reload(str(file)) == {name: MembershipChange()}
    finally:
        clusterdb.unregister(name)


# -- the monitor follows --


class Listed:
    """A cluster stand-in whose node list a test changes."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.name = "listed"
        self.node_names = names
        self.options = clusterdb.config.ClusterOptions(heartbeat=60.0)
        self.probed: list[str] = []
        self.lock = threading.Lock()

    def probe(self, node: str) -> bool:
        with self.lock:
            self.probed.append(node)
        return True

    def observed_at(self, node: str) -> float | None:
        return None  # no connects: every probe is due


def wait_for(check: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_monitor_probes_new_nodes_at_once_and_forgets_removed_ones() -> None:
    monitor = Monitor(
        lambda target, *args, name: threading.Thread(target=target, args=args).start()
    )
    listed = Listed(("a", "b"))
    try:
        monitor.watch(listed)
        assert wait_for(lambda: sorted(listed.probed) == ["a", "b"])
        listed.node_names = ("a", "c")
        monitor.nodes_changed(listed, ("c",))
        assert wait_for(lambda: "c" in listed.probed)
        assert sorted(monitor._schedules[listed]) == ["a", "c"]
        assert listed.probed.count("a") == 1  # a heartbeat (60 s) away still
    finally:
        monitor.stop()


# -- under load --


def test_connects_in_eight_threads_while_nodes_come_and_go(registered: str, tmp_path: Path) -> None:
    """sqlite3 stands in for the servers (tests/server has the real thing): the bookkeeping
    of attempts against records retired under them ends at zero, and nothing raises."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                clusterdb.connect(registered).close()
            except BaseException as exc:  # collected, asserted below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    try:
        for i in range(40):
            clusterdb.add_node(registered, {"name": "c", "dsn": str(tmp_path / f"c{i % 2}.db")})
            if i % 3 == 0:  # b goes and comes back too, under the same name
                clusterdb.remove_node(registered, "b")
                clusterdb.add_node(registered, {"name": "b", "dsn": str(tmp_path / "b.db")})
            clusterdb.remove_node(registered, "c")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    cluster = process.get(registered)

    def idle() -> bool:
        cluster.fold()
        return (cluster._in_flight, cluster._stale) == (0, {})

    assert wait_for(idle)
    assert all(n.pending == 0 for n in clusterdb.stats.snapshot(registered).nodes)
