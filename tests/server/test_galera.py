"""Galera awareness on real servers (issue 17): the probe reads each node's wsrep state; under
4 writer threads a node isolated into a minority and a donor get no connections (within one
heartbeat of the change), no connect() fails while a synced node is up, and with
``single_writer`` every write goes to one node, then to the next within 1 s of its death."""

from __future__ import annotations

import contextlib
import time
from collections import Counter

import pymysql
import pytest
from connect_support import registered
from galera_support import Writers
from health_support import ConnectLoop, describe_nodes, node_stats, until

from clusterdb.core.galera import WsrepStatus
from clusterdb.drivers.pymysql import PyMySQLAdapter
from clusterdb.testing import GaleraCluster, MariaDBCluster, TestNode
from clusterdb.testing.cluster import Cluster

pytestmark = pytest.mark.galera

HEARTBEAT = 0.5
# A probe begins at most one heartbeat after a change and takes a few ms; this covers the
# probe's own time and a thread waiting for the CPU on a loaded machine.
SLACK = 0.5
# PyMySQL 1.2 builds an SSL context on every connect otherwise (tens of ms of CPU).
OPTIONS = {"monitor": True, "heartbeat": HEARTBEAT, "connect_timeout": 3.0, "ssl_disabled": True}


def probe(harness: Cluster, node: TestNode) -> tuple[str | None, WsrepStatus | None]:
    conn = pymysql.connect(**harness.connect_kwargs(node), connect_timeout=5, read_timeout=5)
    with contextlib.closing(conn):
        result = PyMySQLAdapter().probe(conn)
    return result.role, result.wsrep


def test_the_probe_reads_the_wsrep_state(
    galera_cluster: GaleraCluster, mariadb_cluster: MariaDBCluster
) -> None:
    g = galera_cluster
    assert probe(g, g.nodes[0]) == ("primary", WsrepStatus(4, True, "Primary", desync=False))
    g.desync(g.nodes[1])
    assert probe(g, g.nodes[1]) == ("primary", WsrepStatus(2, True, "Primary", desync=True))
    g.isolate(g.nodes[2])
    role, wsrep = probe(g, g.nodes[2])
    assert role == "primary" and wsrep is not None
    assert (wsrep.ready, wsrep.cluster_status) == (False, "non-Primary")
    # A server without the Galera provider: the replication probe, as before.
    m = mariadb_cluster
    assert probe(m, m.nodes[0]) == ("primary", None)
    assert probe(m, m.nodes[1]) == ("replica", None)


def landed(loop: ConnectLoop, start: float, end: float = float("inf")) -> list[str | None]:
    """Where the loop's connects that returned in ``[start, end)`` landed."""
    with loop.lock:
        return [x.node for x in loop.landings if start <= x.at < end]


def test_isolated_node_and_donor_get_no_connections_under_4_writers(
    galera_cluster: GaleraCluster,
) -> None:
    g = galera_cluster
    lone, donor, third = g.nodes[2], g.nodes[1], g.nodes[0]
    with (
        registered(g, **OPTIONS) as name,
        Writers(g, name, threads=4) as w,
        # Connects that only ask where they landed: a write on a node that has just left sync
        # can block (a donor's commits wait for its transfer), a connect does not.
        ConnectLoop(g, name, role="primary") as loop,
    ):
        began = time.monotonic()
        assert until(lambda: set(w.nodes_between(began)) == {n.name for n in g.nodes}, 20)

        g.isolate(lone)  # returns once it has left the primary component
        isolated = time.monotonic()
        seen = until(lambda: node_stats(name, lone.name).galera == "non-primary", 10)
        assert seen is not None and seen < HEARTBEAT + SLACK, describe_nodes(name)
        time.sleep(4 * HEARTBEAT)
        cut_off = isolated + HEARTBEAT + SLACK
        assert lone.name not in w.nodes_between(cut_off) + landed(loop, cut_off)
        assert len(landed(loop, cut_off)) >= 5
        g.rejoin(lone)  # returns once it is synced again
        rejoined = time.monotonic()
        back = until(lambda: lone.name in landed(loop, rejoined), 10)
        assert back is not None, describe_nodes(name)

        hold = 3.0
        assert g.state_transfer(lone, donor=donor, hold=hold, wait=False) is donor
        donating = time.monotonic()  # the donor is Donor/Desynced for at least `hold` s more
        noticed = until(lambda: node_stats(name, donor.name).galera == "donor", 10)
        assert noticed is not None and noticed < HEARTBEAT + SLACK, describe_nodes(name)
        g.wait_synced()
        synced = time.monotonic()
        window = landed(loop, donating + HEARTBEAT + SLACK, donating + hold)
        assert len(window) >= 5 and set(window) == {third.name}, Counter(window)
        writes = w.nodes_between(donating + HEARTBEAT + SLACK, donating + hold)
        assert set(writes) <= {third.name}, Counter(writes)
        again = until(lambda: donor.name in landed(loop, synced), 10)
        assert again is not None, describe_nodes(name)
    print(
        f"\n{len(w.writes)} writes by 4 threads, per node {Counter(x.node for x in w.writes)}; "
        f"isolated node seen {seen:.2f} s after isolate() returned, back {back:.2f} s after "
        f"rejoin(); donor seen {noticed:.2f} s after it was one; {len(window)} connects while "
        f"it was held, all on {third.name}"
    )
    assert w.connect_failures == [] and loop.failures == [], (w.connect_failures, loop.failures)
    # Statements fail only on the node cut off (before it noticed) or restarted for the SST,
    # besides certification conflicts (1213), which several writers meet when the members
    # (and so each node's auto-increment offset) change: what single_writer avoids.
    elsewhere = [e for e in w.write_errors if e[1] not in (lone.name, "?") and "(1213," not in e[2]]
    assert not elsewhere, elsewhere[:3]


def test_single_writer_sends_every_write_to_one_node_then_the_next_within_1_s(
    galera_cluster: GaleraCluster,
) -> None:
    g = galera_cluster
    first, second = g.nodes[0], g.nodes[1]
    with (
        registered(g, **OPTIONS, single_writer=True) as name,
        Writers(g, name, threads=4) as w,
    ):
        began = time.monotonic()
        assert until(lambda: len(w.landed_between(began)) >= 100, 30), describe_nodes(name)
        killed = time.monotonic()
        first.kill()
        # Connections land on the next writer within 1 s of the kill (their commits then wait
        # for the others to evict the dead node: Galera's suspect timeout).
        assert until(lambda: w.first_on(second.name, killed) is not None, 10)
        moved = (w.first_on(second.name, killed) or killed) - killed
        assert moved < 1.0, describe_nodes(name)
        assert until(lambda: len(w.landed_between(killed + 1.0)) >= 100, 30), describe_nodes(name)
        restarting = time.monotonic()
        # It joins again (the donor of its transfer leaves the plans meanwhile); once it is
        # synced, every process moves back to it.
        first.start()
        restarted = time.monotonic()
        back = until(lambda: w.first_on(first.name, restarted) is not None, 15)
        assert back is not None, describe_nodes(name)
    before = w.landed_between(began, killed)
    after = w.landed_between(killed + 1.0, restarting)
    print(
        f"\nsingle writer: {len(before)} connects on {set(before)} before the kill, the first "
        f"on {second.name} {moved:.3f} s after it, {len(after)} on {set(after)} from 1 s after; "
        f"back on {first.name} {back:.2f} s after it synced"
    )
    assert set(before) == {first.name}
    assert set(after) == {second.name}
    assert w.connect_failures == [], w.connect_failures[:3]
