"""Galera state through the runtime cluster (no server): a probe's wsrep status decides
whether a node is planned, shows in stats, and is logged when it changes."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from clusterdb.config import cluster_from_kwargs
from clusterdb.core.galera import Topology, WsrepStatus
from clusterdb.core.node_state import ProbeOutcome
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.runtime.cluster import Cluster

SYNCED = WsrepStatus(4, True, "Primary")
DONOR = WsrepStatus(2, True, "Primary")


def make_cluster(topology: Topology = "auto") -> Cluster:
    specs = [{"name": n, "dsn": ":memory:"} for n in ("a", "b", "c")]
    options = {"monitor": False, "topology": topology}
    return Cluster(cluster_from_kwargs("g", sqlite3, specs, options), GenericAdapter(sqlite3))


def probe(cluster: Cluster, node: str, wsrep: WsrepStatus | None) -> None:
    outcome = ProbeOutcome(True, latency=0.001, rtt=0.001, role="primary", wsrep=wsrep)
    cluster.record_probe(node, outcome)


def planned(cluster: Cluster) -> tuple[set[str], dict[str, str]]:
    chosen, _ = cluster.begin("primary")
    for name in chosen.nodes if chosen.race else chosen.nodes[:1]:
        cluster.attempt_abandoned(name)
    return set(chosen.nodes), dict(chosen.rejected)


def test_a_donor_leaves_the_plans_at_once_and_comes_back_synced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cluster = make_cluster()
    for name in ("a", "b", "c"):
        probe(cluster, name, SYNCED)
    assert planned(cluster) == ({"a", "b", "c"}, {})  # and this ranking is kept...
    with caplog.at_level(logging.INFO, logger="clusterdb"):
        probe(cluster, "b", DONOR)  # ...until the Galera state alone changes
        nodes, rejected = planned(cluster)
        assert nodes == {"a", "c"} and rejected["b"].startswith("galera donor")
        assert cluster.stats_snapshot().node("b").galera == "donor"
        probe(cluster, "b", SYNCED)
        assert planned(cluster) == ({"a", "b", "c"}, {})
    messages = [r.getMessage() for r in caplog.records]
    assert any("node b: galera donor (only synced nodes are used)" in m for m in messages)
    assert any("node b: galera synced again (was donor)" in m for m in messages)
    assert cluster.stats_snapshot().node("a").galera == "synced"


def test_a_failed_probe_keeps_the_last_galera_state() -> None:
    cluster = make_cluster()
    probe(cluster, "a", DONOR)
    cluster.record_probe("a", ProbeOutcome(False, error=OSError("timed out")))
    assert cluster.describe().node("a").galera == "donor"


def test_topology_replication_ignores_wsrep() -> None:
    cluster = make_cluster("replication")
    probe(cluster, "a", DONOR)
    assert cluster.describe().node("a").galera is None
    assert "a" in planned(cluster)[0]


def test_topology_galera_keeps_a_standalone_node_out() -> None:
    cluster = make_cluster("galera")
    probe(cluster, "a", None)
    probe(cluster, "b", SYNCED)
    nodes, rejected = planned(cluster)
    assert "a" not in nodes and rejected["a"].startswith("galera standalone")
    assert cluster.describe().node("c").galera is None  # not probed yet: no state


def test_single_writer_moves_when_the_writer_leaves_and_back_when_it_is_synced() -> None:
    specs = [{"name": n, "dsn": ":memory:"} for n in ("a", "b", "c")]
    options = {"monitor": False, "single_writer": True}
    config = cluster_from_kwargs("g", sqlite3, specs, options)
    cluster = Cluster(config, GenericAdapter(sqlite3))
    for name in ("a", "b", "c"):
        probe(cluster, name, SYNCED)
    assert cluster.describe().writer == "a"
    probe(cluster, "a", DONOR)
    assert cluster.describe().writer == "b"
    chosen, _ = cluster.begin("primary")
    cluster.attempt_abandoned(chosen.nodes[0])
    assert chosen.nodes == ("b", "c") and not chosen.race
    cluster.attempt_started("b")
    cluster.record_failure("b", OSError("refused"))
    assert cluster.describe().writer == "c"
    probe(cluster, "a", SYNCED)
    assert cluster.describe().writer == "a"
    assert make_cluster().describe().writer is None  # the option is off by default
