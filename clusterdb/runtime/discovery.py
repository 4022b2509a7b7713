"""The node list from Patroni: ``GET /cluster`` on the cluster's REST endpoints, applied with
one call to :meth:`~clusterdb.runtime.membership.Membership.set_nodes`.

The monitor polls each heartbeat, and at once (within the rate limit of
:class:`~clusterdb.core.recheck.RecheckGate`) when a primary attempt fails or finds another
role (``request_check``). Endpoints are tried in turn, the last one that answered first, each
bounded by a timeout; one that fails is skipped, and when all fail the last known list is kept
(etcd down makes every ``/cluster`` hang or fail, yet the servers still serve).

Patroni's roles are a hint, never a decision: when Patroni's view changes (a new leader, a
member gone) or disagrees with what clusterdb's probes found, every node is probed now
(``request_check``), and only a probe makes a node primary. Why: Patroni reports a new leader
a moment before its promotion ends, and a client trusting it would write to a replica.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Protocol

from clusterdb.config import ClusterConfig, NodeEntry
from clusterdb.config.dns import check_dns
from clusterdb.config.patroni import PatroniView, parse_cluster
from clusterdb.core.description import ClusterDescription, Role
from clusterdb.drivers import DriverAdapter
from clusterdb.errors import ConfigError
from clusterdb.runtime.dns import DnsSource

__all__ = ["Discovering", "PatroniSource", "fetch_json"]

log = logging.getLogger("clusterdb")

_SERVING = ("running", "streaming")
MAX_TIMEOUT = 2.0
"""Longest wait for one endpoint (seconds): a hung REST API must not hold a poll for long."""


def fetch_json(url: str, timeout: float) -> object:
    """``GET url`` and its decoded JSON body (urllib: no dependency)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


class PatroniSource:
    """Patroni REST endpoints, the one that last answered tried first."""

    def __init__(self, urls: Sequence[str], timeout: float) -> None:
        self.urls = list(urls)
        self.timeout = timeout
        self.last_error = ""

    def fetch(self, get: object = None) -> PatroniView | None:
        """The view of the first endpoint that answers with Patroni's ``/cluster``; None when
        every endpoint failed (``last_error`` says how the last one did)."""
        for index, url in enumerate(list(self.urls)):
            try:
                view = parse_cluster(fetch_json(f"{url}/cluster", self.timeout))
            except Exception as exc:  # refused, timed out, not JSON, not Patroni's: next one
                self.last_error = f"{url}: {type(exc).__name__}: {exc}"[:300]
                continue
            if index:
                self.urls.insert(0, self.urls.pop(index))
            return view
        return None


class Cluster(Protocol):
    """What discovery needs of a runtime cluster."""

    name: str
    config: ClusterConfig

    def set_nodes(self, entries: Sequence[NodeEntry]) -> object: ...
    def describe(self) -> ClusterDescription: ...
    def request_check(self) -> None: ...


def disagrees(
    roles: Mapping[str, Role], states: Mapping[str, str], desc: ClusterDescription
) -> bool:
    """True when a serving member's role per Patroni is not what clusterdb's probes found."""
    known = {n.name: n.role for n in desc.nodes}
    return any(
        known.get(name) != role for name, role in roles.items() if states.get(name) in _SERVING
    )


class Discovering:
    """The discovery side of :class:`~clusterdb.runtime.cluster.Cluster` (its fields are set
    by :meth:`_start_discovery`)."""

    name: str
    config: ClusterConfig
    adapter: DriverAdapter
    discovery: PatroniSource | DnsSource | None
    _seen_roles: Mapping[str, Role] | None
    _hinted_at: float
    _polling: threading.Lock

    def _start_discovery(self) -> None:
        options = self.config.options
        self._polling = threading.Lock()
        self._seen_roles = None
        self._hinted_at = -1e9
        self.discovery = None
        if options.patroni:
            timeout = min(options.connect_timeout, MAX_TIMEOUT)
            self.discovery = PatroniSource(options.patroni, timeout)
        elif options.dns:
            names = check_dns(list(options.dns), "dns")
            self.discovery = DnsSource(names, keep_name=self.adapter.name == "psycopg")
        if self.discovery is not None and not self.config.nodes:
            self.discover()  # nothing to serve from until the source answers

    def discover(self) -> bool:
        """Poll the endpoints once and apply what they say; True when one answered.
        Called by the monitor (one poll at a time per cluster)."""
        source = self.discovery
        if source is None:
            return False
        with self._polling:
            view = source.fetch()
            if view is None:
                log.warning(
                    "cluster %r: discovery found nothing; keeping the node list (%s)",
                    self.name,
                    source.last_error,
                )
                return False
            self._apply(view)
            return True

    def _apply(self, view: PatroniView) -> None:
        cluster: Cluster = self  # type: ignore[assignment]
        if view.nodes:
            try:
                cluster.set_nodes(view.nodes)
            except ConfigError as exc:
                log.warning("cluster %r: Patroni's member list refused: %s", self.name, exc)
                return
        now = time.monotonic()
        changed = view.roles != self._seen_roles
        self._seen_roles = view.roles
        heartbeat = self.config.options.heartbeat
        stale = now - self._hinted_at >= heartbeat
        if changed or (stale and disagrees(view.roles, view.states, cluster.describe())):
            self._hinted_at = now
            cluster.request_check()
