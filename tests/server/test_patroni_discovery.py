"""Patroni discovery against real Patroni over a real etcd (issue 18), one cluster through every
fault in turn, under writer (role="primary") and reader (role="replica") threads:

* switchover (patronictl) and failover (the leader killed): role="primary" reaches the new
  leader within 1 s of Patroni reporting it, and no write goes to a demoted member once the
  new leader is reported (plus that 1 s);
* a member added by Patroni gets reads with no call to clusterdb;
* etcd stopped: clusterdb keeps serving from the node list it knows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest
from pools_support import Workload

import clusterdb
from clusterdb.testing.patroni import PatroniCluster

REACH = 1.0  # the bound: the new leader gets role="primary" within this of Patroni's word


@dataclass
class LeaderWatch:
    """Polls Patroni's /cluster every 50 ms: each change of the reported leader, and when."""

    cluster: PatroniCluster
    changes: list[tuple[float, str | None]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                leader = self.cluster.leader()
            except Exception:
                leader = None
            if leader is not None and (not self.changes or self.changes[-1][1] != leader):
                self.changes.append((time.monotonic(), leader))
            time.sleep(0.05)

    def reported(self, leader: str, since: float) -> float:
        """When Patroni first reported ``leader`` as leader after ``since``."""
        times = [t for t, name in self.changes if name == leader and t >= since]
        assert times, f"Patroni never reported {leader} as leader: {self.changes}"
        return min(times)

    @contextmanager
    def running(self) -> Iterator[LeaderWatch]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            thread.join(10)


@dataclass
class Sent:
    at: float
    node: str
    error: str  # "" for a write that succeeded


def _writer(name: str, table: str, sent: list[Sent]) -> Workload:
    def write(thread: int, key: int) -> str:
        conn = clusterdb.connect(name, role="primary")
        ref = clusterdb.node_of(conn)
        assert ref is not None
        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} (id) VALUES (%s)", (key,))
            conn.commit()
        except psycopg.Error as exc:
            sent.append(Sent(time.monotonic(), ref.node, type(exc).__name__))
            raise
        finally:
            conn.close()
        sent.append(Sent(time.monotonic(), ref.node, ""))
        return ref.node

    return Workload(write, threads=2, pause=0.02, pause_after_error=0.05)


def _reader(name: str) -> Workload:
    def read(thread: int, key: int) -> str:
        conn = clusterdb.connect(name, role="replica")
        try:
            ref = clusterdb.node_of(conn)
            assert ref is not None
            conn.execute("SELECT 1").fetchall()
            return ref.node
        finally:
            conn.close()

    return Workload(read, threads=2, pause=0.02, pause_after_error=0.05)


def _check_transition(sent: list[Sent], old: str, new: str, reported: float, what: str) -> None:
    """The first write on ``new`` within REACH of Patroni reporting it; none on ``old`` after."""
    reached = [s.at for s in sent if s.node == new and not s.error and s.at > reported - 5]
    assert reached, f"{what}: no write reached {new}"
    assert min(reached) - reported < REACH, f"{what}: {min(reached) - reported:.2f} s"
    print(f"{what}: first write on {new} {min(reached) - reported:+.3f} s after Patroni said so")
    late = [s for s in sent if s.node == old and s.at > reported + REACH]
    assert not late, f"{what}: {len(late)} writes sent to the demoted {old}: {late[:3]}"


@pytest.mark.patroni
@pytest.mark.timeout(600)
def test_patroni_cluster_followed_under_load(patroni_cluster: PatroniCluster) -> None:
    cluster = patroni_cluster
    table = "discovery_writes"
    first = cluster.leader()
    assert first is not None
    cluster.execute(first, f"CREATE TABLE {table} (id bigint PRIMARY KEY)", admin=False)
    kwargs = cluster.register_kwargs()
    kwargs["nodes"] = []  # everything from Patroni: register() polls it once
    clusterdb.register("patroni", **kwargs, heartbeat=1.0, connect_timeout=1.0, monitor=True)
    try:
        assert {n.name for n in clusterdb.stats.snapshot("patroni").nodes} == {"m1", "m2", "m3"}
        sent: list[Sent] = []
        watch = LeaderWatch(cluster)
        with (
            watch.running(),
            _writer("patroni", table, sent) as writes,
            _reader("patroni") as reads,
        ):
            writes.wait_successes(20, timeout=30)
            reads.wait_successes(20, timeout=30)

            began = time.monotonic()
            new = cluster.switchover()
            time.sleep(REACH + 1.0)
            _check_transition(sent, first, new, watch.reported(new, began), "switchover")

            began = time.monotonic()
            killed = cluster.kill_leader(expire=True)  # the key deleted: no 20 s ttl waited out
            promoted = cluster.wait_leader(other_than=killed, timeout=90)
            time.sleep(REACH + 1.0)
            _check_transition(sent, killed, promoted, watch.reported(promoted, began), "failover")

            added = cluster.add_member().name
            joined = time.monotonic()
            deadline = joined + 20
            while time.monotonic() < deadline:
                if reads.successes_between(joined, time.monotonic()) and any(
                    o.node == added for o in reads.successes_between(joined, time.monotonic())
                ):
                    break
                time.sleep(0.1)
            on_added = [
                o for o in reads.successes_between(joined, time.monotonic()) if o.node == added
            ]
            assert on_added, f"no read reached the added member {added}"

            known = {n.name for n in clusterdb.stats.snapshot("patroni").nodes}
            cluster.stop_etcd()
            stopped = time.monotonic()
            time.sleep(6.0)  # below Patroni's ttl: the leader is still primary
            assert len(writes.successes_between(stopped, time.monotonic())) > 20
            assert len(reads.successes_between(stopped, time.monotonic())) > 20
            assert not writes.failures_after(stopped + 0.5)
            assert {n.name for n in clusterdb.stats.snapshot("patroni").nodes} == known
            cluster.start_etcd()
        assert known == {"m1", "m2", "m3", added} - {killed}  # Patroni dropped the killed one
    finally:
        clusterdb.unregister("patroni")
