"""The Prometheus exposition of a real cluster: one series per node for each metric."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import clusterdb
from clusterdb.prometheus import COUNTERS, GAUGES, ClusterdbCollector, register_collector

pytestmark = pytest.mark.postgres

CANARY = "Canary-prom-5d4c3b-secret"

Series = dict[str, dict[str, tuple[str, float]]]
"""metric name -> node -> (role, value)"""


def scrape(registry: CollectorRegistry, cluster: str) -> tuple[str, Series]:
    text = generate_latest(registry).decode()
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("cluster") != cluster or "node" not in sample.labels:
                continue
            if sample.name.endswith("_created"):
                continue
            per_node = out.setdefault(sample.name, {})
            assert sample.labels["node"] not in per_node, f"two series for {sample}"
            per_node[sample.labels["node"]] = (sample.labels["role"], sample.value)
    return text, out


@pytest.fixture
def name(pg_cluster: Any) -> Iterator[str]:
    cluster = f"prom-{uuid.uuid4().hex[:8]}"
    clusterdb.register(cluster, **pg_cluster.register_kwargs(), connect_timeout=2.0)
    try:
        yield cluster
    finally:
        clusterdb.unregister(cluster)


def test_one_series_per_node_for_each_metric(pg_cluster: Any, name: str) -> None:
    for _ in range(5):
        clusterdb.connect(name).close()
    # Late losers of a race finish after connect() returned: let them land in the stats.
    deadline = time.monotonic() + 10
    while any(n.pending for n in clusterdb.stats.snapshot(name).nodes):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    registry = CollectorRegistry()
    register_collector(registry)
    _, series = scrape(registry, name)
    nodes = sorted(n.name for n in pg_cluster.nodes)
    expected = [f"{m}_total" for m in COUNTERS] + list(GAUGES)
    for metric in expected:
        assert sorted(series[metric]) == nodes, metric
    connects = series["clusterdb_node_connects_total"]
    assert sum(v for _, v in connects.values()) >= 5
    assert all(v == 1.0 for _, v in series["clusterdb_node_up"].values())
    snap = clusterdb.stats.snapshot(name)
    for node in snap.nodes:
        assert connects[node.name] == (node.role, float(node.connects))


def test_killed_node_goes_to_zero(pg_cluster: Any, name: str) -> None:
    victim = pg_cluster.replicas[-1]
    clusterdb.connect(name).close()
    victim.kill()
    registry = CollectorRegistry()
    registry.register(ClusterdbCollector(clusters=(name,)))
    deadline = time.monotonic() + 30
    up = 1.0
    while time.monotonic() < deadline:
        # Connects race or hedge onto the dead node sooner or later; the monitor probes it too.
        clusterdb.connect(name).close()
        _, series = scrape(registry, name)
        up = series["clusterdb_node_up"][victim.name][1]
        if up == 0.0:
            break
        time.sleep(0.2)
    assert up == 0.0
    assert series["clusterdb_node_last_error_timestamp_seconds"][victim.name][1] > 0
    errors = series["clusterdb_node_connect_errors_total"][victim.name][1]
    probe_errors = series["clusterdb_node_probe_errors_total"][victim.name][1]
    assert errors + probe_errors >= 1


def test_no_secret_in_metrics(pg_cluster: Any) -> None:
    cluster = f"prom-canary-{uuid.uuid4().hex[:8]}"
    clusterdb.register(
        cluster, **{**pg_cluster.register_kwargs(), "password": CANARY}, connect_timeout=2.0
    )
    try:
        with pytest.raises(clusterdb.AllNodesFailed):
            clusterdb.connect(cluster)
        registry = CollectorRegistry()
        register_collector(registry)
        text, series = scrape(registry, cluster)
        assert all(v >= 1.0 for _, v in series["clusterdb_node_connect_errors_total"].values())
        assert CANARY not in text
    finally:
        clusterdb.unregister(cluster)
