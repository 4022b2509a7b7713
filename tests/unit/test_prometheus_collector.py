"""The Prometheus collector over hand-made snapshots (no server): exposition and labels."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from clusterdb.core.galera import GALERA_STATES
from clusterdb.prometheus import (
    CLUSTER_COUNTERS,
    COUNTERS,
    GALERA_STATE,
    GAUGES,
    ClusterdbCollector,
    register_collector,
)
from clusterdb.stats import ClusterStats, NodeStats

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def node(name: str, **changes: object) -> NodeStats:
    fields: dict[str, object] = {
        "name": name,
        "address": "127.0.0.1:5432",
        "state": "up",
        "role": "replica",
        "connects": 5,
        "connect_errors": 1,
        "discarded": 2,
        "pending": 0,
        "last_error": "boom",
        "last_error_at": NOW,
        "last_success_at": None,
        "latency_ms": 2.5,
        "latency_min_ms": 2.0,
        "rtt_ms": None,
        "lag_s": 0.25,
        "state_changes": 3,
        "last_state_change_at": NOW,
        "down_since": None,
        "drained": False,
        "probes": 4,
        "probe_errors": 1,
    }
    fields.update(changes)
    return NodeStats(**fields)  # type: ignore[arg-type]


SNAP = {
    "main": ClusterStats(
        "main",
        "psycopg",
        (node("pg0", role="primary"), node("pg1", state="down", drained=True), node("pg2")),
        10,
        2,
        NOW,
        causal_waits=3,
        causal_fallbacks=4,
    )
}
EXPECTED_CLUSTER = {
    "clusterdb_connects": 10.0,
    "clusterdb_connect_failures": 2.0,
    "clusterdb_causal_waits": 3.0,
    "clusterdb_causal_fallbacks": 4.0,
}


def scrape(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_one_series_per_node_for_each_metric() -> None:
    registry = CollectorRegistry()
    registry.register(ClusterdbCollector(lambda: SNAP))
    samples = scrape(registry)
    names = [f"{n}_total" for n in COUNTERS] + list(GAUGES)
    for name in names:
        series = samples[name]
        assert sorted(s[0]["node"] for s in series) == ["pg0", "pg1", "pg2"], name
        assert all(set(s[0]) == {"cluster", "node", "role"} for s in series)
    assert set(CLUSTER_COUNTERS) == set(EXPECTED_CLUSTER)
    for name in CLUSTER_COUNTERS:
        assert samples[f"{name}_total"] == [({"cluster": "main"}, EXPECTED_CLUSTER[name])]


def test_values_and_labels() -> None:
    registry = CollectorRegistry()
    registry.register(ClusterdbCollector(lambda: SNAP))
    samples = scrape(registry)

    def value(metric: str, node_name: str) -> float:
        (v,) = [v for labels, v in samples[metric] if labels["node"] == node_name]
        return v

    assert {labels["role"] for labels, _ in samples["clusterdb_node_up"]} == {"primary", "replica"}
    assert value("clusterdb_node_up", "pg0") == 1.0
    assert value("clusterdb_node_up", "pg1") == 0.0
    assert value("clusterdb_node_drained", "pg1") == 1.0
    assert value("clusterdb_node_connects_total", "pg0") == 5.0
    assert value("clusterdb_node_discarded_total", "pg0") == 2.0
    assert value("clusterdb_node_probe_errors_total", "pg0") == 1.0
    assert value("clusterdb_node_latency_seconds", "pg0") == 0.0025
    assert math.isnan(value("clusterdb_node_rtt_seconds", "pg0"))
    assert value("clusterdb_node_lag_seconds", "pg2") == 0.25
    assert value("clusterdb_node_last_error_timestamp_seconds", "pg0") == NOW.timestamp()
    assert value("clusterdb_node_last_success_timestamp_seconds", "pg0") == 0.0


def test_galera_state_one_series_per_state_for_galera_nodes_only() -> None:
    snap = {
        "g": ClusterStats(
            "g",
            "pymysql",
            (node("gal0", galera="synced"), node("gal1", galera="donor"), node("mdb")),
            0,
            0,
            NOW,
        )
    }
    registry = CollectorRegistry()
    registry.register(ClusterdbCollector(lambda: snap))
    series = scrape(registry)[GALERA_STATE]
    assert {labels["node"] for labels, _ in series} == {"gal0", "gal1"}
    assert len(series) == 2 * len(GALERA_STATES)
    current = {(labels["node"], labels["state"]) for labels, v in series if v == 1.0}
    assert current == {("gal0", "synced"), ("gal1", "donor")}
    assert all(set(labels) == {"cluster", "node", "role", "state"} for labels, _ in series)


def test_cluster_filter_and_empty() -> None:
    registry = CollectorRegistry()
    registry.register(ClusterdbCollector(lambda: SNAP, clusters=("other",)))
    samples = scrape(registry)
    assert "clusterdb_node_up" not in samples


def test_register_collector_is_idempotent() -> None:
    registry = CollectorRegistry()
    first = register_collector(registry)
    assert register_collector(registry) is first
    # A second, independent registry gets its own collector.
    assert register_collector(CollectorRegistry()) is not first


def test_import_without_prometheus_client_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n    import clusterdb.prometheus\n"
        "except ImportError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "ERR" in out.stdout
    assert "pip install clusterdb[prometheus]" in out.stdout
