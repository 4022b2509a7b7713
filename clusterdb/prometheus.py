"""Prometheus metrics for clusterdb: a custom ``prometheus_client`` collector.

    from clusterdb.prometheus import register_collector
    register_collector()          # into prometheus_client.REGISTRY; idempotent per registry

Every scrape reads :func:`clusterdb.stats.snapshot` (no I/O: the values the connects and the
monitor already recorded). Each metric has one series per node, labelled ``cluster``, ``node``
and ``role``. Estimates not measured yet (latency, rtt, lag) are ``NaN``; timestamps of things
that never happened are ``0``, so ``time() - clusterdb_node_last_success_timestamp_seconds``
is huge (and alerts fire) for a node that never answered.

Needs the optional extra: ``pip install clusterdb[prometheus]``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

try:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "clusterdb.prometheus needs prometheus_client, which is not installed: "
        "pip install clusterdb[prometheus]"
    ) from exc

from clusterdb import stats
from clusterdb.core.galera import GALERA_STATES
from clusterdb.core.stats import ClusterStats, NodeStats

__all__ = [
    "COUNTERS",
    "GALERA_STATE",
    "GAUGES",
    "LABELS",
    "ClusterdbCollector",
    "register_collector",
]

LABELS: tuple[str, ...] = ("cluster", "node", "role")

NAN = math.nan


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _seconds_from_ms(value: float | None) -> float:
    return value / 1000.0 if value is not None else NAN


# name (without _total) -> (help, value); prometheus_client appends "_total" to counters.
COUNTERS: dict[str, tuple[str, Callable[[NodeStats], float]]] = {
    "clusterdb_node_connects": (
        "Successful connect attempts to the node (winners, late losers, wrong role).",
        lambda n: n.connects,
    ),
    "clusterdb_node_connect_errors": (
        "Failed connect attempts to the node.",
        lambda n: n.connect_errors,
    ),
    "clusterdb_node_discarded": (
        "Successful attempts whose connection was closed unused (lost the race, wrong role).",
        lambda n: n.discarded,
    ),
    "clusterdb_node_probes": ("Monitor probes of the node.", lambda n: n.probes),
    "clusterdb_node_probe_errors": ("Monitor probes that failed.", lambda n: n.probe_errors),
    "clusterdb_node_state_changes": (
        "Changes of the node's state (up, down).",
        lambda n: n.state_changes,
    ),
}

GAUGES: dict[str, tuple[str, Callable[[NodeStats], float]]] = {
    "clusterdb_node_up": (
        "1 when the node's last connect or probe succeeded, else 0.",
        lambda n: 1.0 if n.state == "up" else 0.0,
    ),
    "clusterdb_node_latency_seconds": (
        "Connect latency estimate (Peak EWMA); NaN before the first sample.",
        lambda n: _seconds_from_ms(n.latency_ms),
    ),
    "clusterdb_node_rtt_seconds": (
        "Monitor round-trip-time estimate; NaN before the first probe.",
        lambda n: _seconds_from_ms(n.rtt_ms),
    ),
    "clusterdb_node_lag_seconds": (
        "Replication lag of a replica; NaN when unknown.",
        lambda n: n.lag_s if n.lag_s is not None else NAN,
    ),
    "clusterdb_node_replication_stopped": (
        "1 when a replica applies no more changes (its lag grows without bound), else 0.",
        lambda n: 1.0 if n.replication_stopped else 0.0,
    ),
    "clusterdb_node_drained": (
        "1 when the node is drained (gets no new connections).",
        lambda n: 1.0 if n.drained else 0.0,
    ),
    "clusterdb_node_pending": (
        "Connect attempts started and not finished yet.",
        lambda n: n.pending,
    ),
    "clusterdb_node_last_success_timestamp_seconds": (
        "Unix time of the last successful connect or probe; 0 when never.",
        lambda n: _ts(n.last_success_at),
    ),
    "clusterdb_node_last_error_timestamp_seconds": (
        "Unix time of the last failed connect or probe; 0 when never.",
        lambda n: _ts(n.last_error_at),
    ),
}

GALERA_STATE = "clusterdb_node_galera_state"
_GALERA_HELP = (
    "1 for a Galera node's current state (label state: "
    + ", ".join(GALERA_STATES)
    + "), 0 for the others; only synced nodes get connections. No series for other nodes."
)

CLUSTER_COUNTERS: dict[str, tuple[str, Callable[[ClusterStats], float]]] = {
    "clusterdb_connects": ("connect() calls that returned a connection.", lambda c: c.connects),
    "clusterdb_connect_failures": ("connect() calls that raised.", lambda c: c.failures),
    "clusterdb_causal_waits": (
        "connect(after=token) calls that waited for a replica to apply the token.",
        lambda c: c.causal_waits,
    ),
    "clusterdb_causal_fallbacks": (
        "connect(after=token) calls no replica served in time (primary used, or refused).",
        lambda c: c.causal_fallbacks,
    ),
}


class ClusterdbCollector(Collector):
    """Yields clusterdb's per-node metric families at each scrape.

    ``snapshot`` returns ``{name: ClusterStats}``; it defaults to
    :func:`clusterdb.stats.snapshot`. ``clusters`` limits the export to those names.
    """

    def __init__(
        self,
        snapshot: Callable[[], Mapping[str, ClusterStats]] | None = None,
        clusters: tuple[str, ...] | None = None,
    ) -> None:
        self._snapshot = snapshot or stats.snapshot
        self._clusters = clusters

    def describe(self) -> Iterator[Metric]:
        # Declared up front so registering does not take a snapshot (auto-describe would).
        for name, (doc, _) in COUNTERS.items():
            yield CounterMetricFamily(name, doc, labels=LABELS)
        for name, (doc, _) in GAUGES.items():
            yield GaugeMetricFamily(name, doc, labels=LABELS)
        for name, (doc, _) in CLUSTER_COUNTERS.items():
            yield CounterMetricFamily(name, doc, labels=("cluster",))
        yield GaugeMetricFamily(GALERA_STATE, _GALERA_HELP, labels=(*LABELS, "state"))

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        clusters = [
            c for name, c in snap.items() if self._clusters is None or name in self._clusters
        ]
        counters = {
            name: CounterMetricFamily(name, doc, labels=LABELS)
            for name, (doc, _) in COUNTERS.items()
        }
        gauges = {
            name: GaugeMetricFamily(name, doc, labels=LABELS) for name, (doc, _) in GAUGES.items()
        }
        totals = {
            name: CounterMetricFamily(name, doc, labels=("cluster",))
            for name, (doc, _) in CLUSTER_COUNTERS.items()
        }
        galera = GaugeMetricFamily(GALERA_STATE, _GALERA_HELP, labels=(*LABELS, "state"))
        for cluster in clusters:
            for name, (_, cvalue) in CLUSTER_COUNTERS.items():
                totals[name].add_metric([cluster.name], float(cvalue(cluster)))
            for node in cluster.nodes:
                labels = [cluster.name, node.name, node.role]
                for name, (_, value) in COUNTERS.items():
                    counters[name].add_metric(labels, float(value(node)))
                for name, (_, value) in GAUGES.items():
                    gauges[name].add_metric(labels, float(value(node)))
                if node.galera is not None:
                    for state in GALERA_STATES:
                        galera.add_metric([*labels, state], 1.0 if node.galera == state else 0.0)
        yield from counters.values()
        yield from gauges.values()
        yield from totals.values()
        yield galera


_registered: weakref.WeakKeyDictionary[CollectorRegistry, ClusterdbCollector] = (
    weakref.WeakKeyDictionary()
)


def register_collector(registry: CollectorRegistry = REGISTRY) -> ClusterdbCollector:
    """Register a :class:`ClusterdbCollector` with ``registry`` once; return it.

    No lock (nothing to reset in a forked child): concurrent first calls share the collector
    that ``setdefault`` kept, and the caller that put it there registers it.
    """
    collector = _registered.get(registry)
    if collector is None:
        candidate = ClusterdbCollector()
        collector = _registered.setdefault(registry, candidate)
        if collector is candidate:
            try:
                registry.register(candidate)
            except BaseException:
                _registered.pop(registry, None)
                raise
    return collector
