"""Membership at run time on real servers (issue 17): 8 threads connecting while nodes are
added and removed in a loop (no error, no connect planned after a removal returned reaches
the removed node, the kept nodes' stats never reset); a Galera node added and removed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from connect_support import registered
from health_support import describe_nodes, node_stats, until

import clusterdb
from clusterdb.runtime import process
from clusterdb.stats import NodeStats
from clusterdb.testing import GaleraCluster, PostgresCluster

HEARTBEAT = 0.5
ROUNDS = 16


@dataclass(frozen=True)
class Connect:
    began: float  # monotonic() before connect()
    node: str


class Connectors:
    """``threads`` threads doing connect() after connect() on cluster ``name``, each
    recording when it began and the node it landed on (node_of), and any error."""

    def __init__(self, name: str, threads: int) -> None:
        self.name = name
        self.connects: list[Connect] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Connectors:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                conn = clusterdb.connect(self.name)
            except Exception as exc:
                with self.lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            ref = clusterdb.node_of(conn)
            conn.close()
            assert ref is not None
            with self.lock:
                self.connects.append(Connect(began, ref.node))
            time.sleep(0.002)  # two cores shared with the servers

    def count(self) -> int:
        with self.lock:
            return len(self.connects)


COUNTS = ("connects", "connect_errors", "probes", "probe_errors", "state_changes")


def never_reset(before: NodeStats, after: NodeStats) -> None:
    """Counters only grow and estimates stay: the node's record was kept."""
    for key in COUNTS:
        assert getattr(after, key) >= getattr(before, key), (key, before, after)
    if before.latency_ms is not None:
        assert after.latency_ms is not None, (before, after)
    if before.last_success_at is not None:
        assert after.last_success_at is not None and after.last_success_at >= before.last_success_at


@pytest.mark.postgres
def test_8_threads_connect_while_nodes_are_added_and_removed(
    pg_cluster: PostgresCluster,
) -> None:
    pg = pg_cluster
    specs = {s["name"]: s for s in pg.node_specs()}
    keeper, *others = (n.name for n in pg.nodes)
    options = {"monitor": True, "heartbeat": HEARTBEAT, "connect_timeout": 5.0}
    # (name, monotonic when its removal returned, monotonic when it was added again)
    absences: list[tuple[str, float, float]] = []
    with registered(pg, **options) as name:
        clusterdb.remove_node(name, others[1])  # begins with two nodes
        gone = {others[1]: time.monotonic()}
        with Connectors(name, threads=8) as c:
            assert until(lambda: c.count() >= 50, 30) is not None, c.errors[:3]
            looping = time.monotonic()
            for _ in range(ROUNDS):  # the one out comes back in, the other one goes out
                (out,) = gone
                victim = others[0] if out == others[1] else others[1]
                before = node_stats(name, keeper)
                added = time.monotonic()
                clusterdb.add_node(name, specs[out])
                absences.append((out, gone.pop(out), added))
                clusterdb.remove_node(name, victim)
                gone[victim] = time.monotonic()
                never_reset(before, node_stats(name, keeper))
                time.sleep(0.5)
            for out in gone:
                absences.append((out, gone[out], float("inf")))
            # The node added last is probed and gets its share (a fresh record on trial).
            last = next(n for n in others if n not in gone)
            used = until(lambda: any(x.node == last and x.began > added for x in c.connects), 30)
            assert used is not None, describe_nodes(name)
        cluster = process.get(name)
        watched = set(process.monitor()._schedules.get(cluster, {}))
        assert watched <= set(cluster.node_names), (watched, cluster.node_names)
    assert c.errors == [], c.errors[:5]
    # Connects landed on the nodes coming and going while they were in: the check below is not
    # an empty one.
    in_between = [x for x in c.connects if x.node in others and x.began > looping]
    assert in_between, Counter(x.node for x in c.connects)
    late = [
        (x, out)
        for x in c.connects
        for out, removed, added in absences
        if x.node == out and removed < x.began < added
    ]
    assert late == [], late[:5]
    per_node = Counter(x.node for x in c.connects)
    print(
        f"\n{len(c.connects)} connects by 8 threads over {ROUNDS} add/remove rounds: {per_node}, "
        f"{len(in_between)} on the nodes coming and going; "
        f"the node added last used {used:.2f} s after the loop"
    )


@pytest.mark.galera
def test_a_galera_node_added_is_probed_and_used_then_removed_is_not(
    galera_cluster: GaleraCluster,
) -> None:
    g = galera_cluster
    first, second, third = (n.name for n in g.nodes)
    specs = {s["name"]: s for s in g.node_specs()}
    # A long heartbeat: a node added is probed at once (nodes_changed wakes the monitor), not
    # at the monitor's next wake-up up to a heartbeat later.
    heartbeat = 5.0
    options = {"monitor": True, "heartbeat": heartbeat, "topology": "galera"}
    options.update(connect_timeout=3.0, ssl_disabled=True)
    with registered(g, **options) as name:
        clusterdb.remove_node(name, third)
        clusterdb.probe(name)
        kept = node_stats(name, first)
        with Connectors(name, threads=4) as c:
            added = time.monotonic()
            clusterdb.add_node(name, specs[third])
            seen = until(lambda: node_stats(name, third).galera == "synced", 10)
            assert seen is not None and seen < heartbeat / 2, describe_nodes(name)
            used = until(lambda: any(x.node == third for x in c.connects[-200:]), 20)
            assert used is not None, describe_nodes(name)
            clusterdb.remove_node(name, second)
            removed = time.monotonic()
            assert until(lambda: sum(x.began > removed for x in c.connects) >= 50, 30)
            never_reset(kept, node_stats(name, first))
    assert c.errors == [], c.errors[:5]
    after = Counter(x.node for x in c.connects if x.began > removed)
    assert second not in after and set(after) == {first, third}, after
    assert any(x.node == third and x.began > added for x in c.connects)
    print(f"\nsynced node {third} seen {seen:.2f} s after add_node(); after removal: {after}")
