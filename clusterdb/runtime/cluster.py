"""The runtime cluster: config, driver adapter and every node's live state, under one lock.

What changes on connect (counters, latency estimates, state, role) changes only under the
cluster's lock, and only briefly: decisions are taken under it (describe, then plan), I/O and
logging happen outside it. One exception keeps the lock off a plain connect's path: the
bookkeeping of a connection that changes nothing but counters and an estimate is queued
(:meth:`Cluster.record_returned`) and done under the lock by the next attempt while it waits
for its server, or by whatever reads or changes the node first (:meth:`Cluster.fold`).

Timestamps are kept as epoch seconds and become aware UTC datetimes only in snapshots, so the
connect path allocates no datetime.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from clusterdb.config import ClusterConfig, ClusterOptions, NodeEntry
from clusterdb.core.description import (
    ClusterDescription,
    NodeDescription,
    NodeState,
    Role,
    WantedRole,
)
from clusterdb.core.latency import LatencyEstimate
from clusterdb.core.rebalance import first_on
from clusterdb.core.redact import Redactor, is_secret_key
from clusterdb.core.selection import Plan, Ranking, rank
from clusterdb.core.stats import ClusterStats, NodeStats
from clusterdb.drivers import ConnectArgs, DriverAdapter, get_adapter
from clusterdb.errors import ConfigError, InterfaceError
from clusterdb.runtime.pooled import node_tags
from clusterdb.runtime.probe import probe_node

__all__ = ["Cluster"]

log = logging.getLogger("clusterdb")

_MS = 1000.0
_REUSE_FOR = 0.05
_RANKING_FOR = 1.0
_DRIFT = 0.1


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * _MS


class _Node:
    """One node's mutable state; changed only under the cluster's lock (read outside it only
    by :meth:`Cluster.record_returned`)."""

    __slots__ = (
        "address",
        "connect_errors",
        "connects",
        "described",
        "described_key",
        "described_until",
        "discarded",
        "down_since",
        "down_since_epoch",
        "drained",
        "lag",
        "last_error",
        "last_error_at",
        "last_state_change_at",
        "last_success_at",
        "latency",
        "name",
        "pending",
        "probe_errors",
        "probes",
        "ranked",
        "replication_stopped",
        "role",
        "rtt",
        "served",
        "state",
        "state_changes",
        "target",
    )

    def __init__(self, entry: NodeEntry, target: ConnectArgs) -> None:
        self.name = entry.name
        self.address = entry.address
        self.target = target
        self.state: NodeState = "unknown"
        self.role: Role = "unknown"
        self.latency = LatencyEstimate()
        self.rtt = LatencyEstimate()
        self.lag: float | None = None
        self.replication_stopped = False
        self.drained = False
        self.pending = 0
        self.served = 0  # connections returned by connect(): a trial's end (not a counter)
        self.ranked: float | None = None  # the latency the cluster's rankings were made with
        self.down_since: float | None = None  # monotonic, for selection
        self.down_since_epoch: float | None = None  # wall clock, for stats
        self.described_until = -math.inf
        self.described_key: tuple[object, ...] = ()
        self.described = self._describe(0.0)
        self.reset_counters()

    def reset_counters(self) -> None:
        self.connects = 0
        self.connect_errors = 0
        self.discarded = 0
        self.probes = 0
        self.probe_errors = 0
        self.state_changes = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.last_state_change_at: float | None = None

    def describe(self, now: float) -> NodeDescription:
        # Most nodes do not change between two connects: their last description is reused
        # for up to _REUSE_FOR seconds (the estimate's decay over that time is < 0.5 %).
        key = (
            self.state,
            self.role,
            self.latency,
            self.lag,
            self.replication_stopped,
            self.drained,
            self.pending,
            self.down_since,
            self.served,
        )
        if now < self.described_until and key == self.described_key:
            return self.described
        self.described = self._describe(now)
        self.described_key = key
        self.described_until = now + _REUSE_FOR
        return self.described

    def _describe(self, now: float) -> NodeDescription:
        return NodeDescription(
            name=self.name,
            address=self.address,
            state=self.state,
            role=self.role,
            latency=self.latency.value_at(now),
            served=self.served,
            lag=self.lag,
            replication_stopped=self.replication_stopped,
            drained=self.drained,
            pending=self.pending,
            down_since=self.down_since,
        )

    def snapshot(self, now: float) -> NodeStats:
        return NodeStats(
            name=self.name,
            address=self.address,
            state=self.state,
            role=self.role,
            connects=self.connects,
            connect_errors=self.connect_errors,
            discarded=self.discarded,
            pending=self.pending,
            last_error=self.last_error,
            last_error_at=_utc(self.last_error_at),
            last_success_at=_utc(self.last_success_at),
            latency_ms=_ms(self.latency.value),
            latency_min_ms=_ms(self.latency.minimum),
            rtt_ms=_ms(self.rtt.value),
            lag_s=self.lag,
            state_changes=self.state_changes,
            last_state_change_at=_utc(self.last_state_change_at),
            down_since=_utc(self.down_since_epoch),
            drained=self.drained,
            probes=self.probes,
            probe_errors=self.probe_errors,
            replication_stopped=self.replication_stopped,
        )


class Watcher(Protocol):
    """What watches a cluster in the background (the process's monitor)."""

    def watch(self, cluster: Any) -> None: ...
    def unwatch(self, cluster: Any) -> None: ...
    def node_failed(self, cluster: Any, node: str) -> None: ...
    def request_check(self, cluster: Any) -> None: ...


# (node, old state, new state, address, detail) of a transition, logged outside the lock.
_Change = tuple[str, NodeState, NodeState, str, str]


class Cluster:
    """One registered cluster: what connect(), stats and the monitor work on."""

    def __init__(self, config: ClusterConfig, adapter: DriverAdapter | None = None) -> None:
        self.config = config
        self.name = config.name
        self.adapter = adapter if adapter is not None else get_adapter(config.driver)
        self.redactor = Redactor(config.secrets)
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._nodes: dict[str, _Node] = {}
        for index, entry in enumerate(config.nodes):
            self._nodes[entry.name] = _Node(entry, self._connect_args(index, entry))
        self._connects = 0
        self._failures = 0
        self._watched_by: Watcher | None = None
        # Rankings kept between connects (see begin()): valid while the epoch stands, which
        # every change that can alter one ends, and while no attempt is pending anywhere.
        self._epoch = 0
        self._in_flight = 0
        self._trial_serves = config.options.selection.trial_serves
        # Re-ranking on a move smaller than this chases noise: local nodes' connect times
        # wander by more than 10 % from one connect to the next (measured on loopback
        # MariaDB: 0.13-0.3 ms p10-p90 with CPUs held polling, 0.33-0.7 ms with idle CPUs
        # allowed to sleep). With 10 % alone, about half of all connects re-ranked, at 50-150
        # us each in place; with this floor, 1-4 % (those connect times replayed through the
        # estimate). A quarter of the window's absolute part (0.25 ms by default): such a
        # move mostly changes only weights, and those for at most a second (the ranking's
        # life).
        self._drift_floor = config.options.selection.window_ms / 4 / _MS
        self._rankings: dict[WantedRole, tuple[int, float, Ranking, ClusterDescription]] = {}
        # (node, latency, monotonic, wall) of connections returned whose bookkeeping waits
        # for fold(); each is also still counted in _in_flight and its node's pending.
        self._outbox: deque[tuple[_Node, float, float, float]] = deque()
        # Pools (issue 13): the tag each connection carries, per node; retired by close().
        self.tags = node_tags(self)
        self.retired = False

    def _connect_args(self, index: int, entry: NodeEntry) -> ConnectArgs:
        try:
            args = self.adapter.connect_args(entry, self.config.connect_kwargs)
            if not self.config.options.pipeline_handshake:
                args = dataclasses.replace(args, pipeline_handshake=False)
            return args
        except Exception as exc:
            # Driver messages about a bad DSN may quote it, password included.
            detail = str(exc) if isinstance(exc, ConfigError) else self.redactor.one_line(exc)
            raise ConfigError(
                f"node {entry.name!r}: the {self.adapter.name} driver refuses its settings: "
                f"{self.redactor.scrub(detail)}",
                f"clusters.{self.name}.nodes[{index}]",
            ) from None

    def __repr__(self) -> str:
        nodes = ", ".join(self._nodes)
        return f"<Cluster {self.name!r} driver={self.adapter.name} nodes=[{nodes}]>"

    @property
    def options(self) -> ClusterOptions:
        return self.config.options

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in registration order (fixed at registration: no lock needed)."""
        return tuple(self._nodes)

    def target(self, node: str) -> ConnectArgs:
        """The driver arguments of ``node`` (immutable after registration: no lock needed)."""
        return self._nodes[node].target

    def redactor_for(self, overrides: Mapping[str, Any]) -> Redactor:
        """The cluster's redactor, plus any secret passed as a connect() override."""
        extra = [v for k, v in overrides.items() if isinstance(v, str) and is_secret_key(k)]
        return self.redactor.with_secrets(extra) if extra else self.redactor

    # -- decisions (under the lock) --

    def describe(self) -> ClusterDescription:
        """What is known about every node now (an immutable value)."""
        with self._lock:
            self._fold()
            return self._describe(time.monotonic())

    def _describe(self, now: float) -> ClusterDescription:
        return ClusterDescription(self.name, tuple(n.describe(now) for n in self._nodes.values()))

    def begin(
        self, wanted: WantedRole, prefer: str | None = None
    ) -> tuple[Plan, ClusterDescription]:
        """Plan one connect() and count its first attempts (all of a race) as pending;
        ``prefer``: a node to try first when the plan has it (a pool moving a connection).

        The ranking under the plan is kept and drawn from again by later connects while
        nothing it depends on changes: state, role, lag, drain, a hedge, an attempt pending,
        or a node's latency estimate moving more than 10 % from the one ranked by (and more
        than a quarter of the latency window's absolute part, 0.25 ms by default); and for at
        most 1 s (every estimate decays at the same rate, < 10 % in that time). Ranking
        is most of what planning costs, and a healthy cluster's ranking rarely changes. A
        kept ranking does not wait for queued bookkeeping (:meth:`record_returned`): the
        latest connect's estimate reaches selection one connect later.
        """
        with self._lock:
            now = time.monotonic()
            kept = self._rankings.get(wanted)
            if (
                kept is not None
                and kept[0] == self._epoch
                and now < kept[1]
                and self._in_flight == len(self._outbox)  # none but returned ones
            ):
                _, _, ranking, desc = kept
            else:
                self._fold()
                desc, ranking = self._rank(wanted, now)
            chosen = ranking.draw(self._rng)
            if prefer is not None:
                chosen = first_on(chosen, prefer)
            first = chosen.nodes if chosen.race else chosen.nodes[:1]
            for name in first:
                self._nodes[name].pending += 1
            self._in_flight += len(first)
        return chosen, desc

    def _rank(self, wanted: WantedRole, now: float) -> tuple[ClusterDescription, Ranking]:
        options = self.config.options
        desc = self._describe(now)
        ranking = rank(
            desc,
            wanted,
            max_lag=options.max_lag,
            selection=options.selection,
            hedge=options.hedge,
            now=now,
        )
        if not self._in_flight:  # pending attempts weigh in a ranking: not one to keep
            ranking = ranking.with_plans()  # cheaper draws for as long as it is kept
            self._rankings[wanted] = (self._epoch, now + _RANKING_FOR, ranking, desc)
            for d in desc.nodes:
                self._nodes[d.name].ranked = d.latency
        return desc, ranking

    def _observe(self, n: _Node, latency: float, now: float) -> None:
        """A connect to ``n`` took ``latency`` s: update its estimate, and end the rankings'
        epoch when the estimate moved too far from the one they were made with."""
        estimate = n.latency = n.latency.observe(latency, now)
        ranked, value = n.ranked, estimate.value_at(now)
        if (
            ranked is None
            or value is None
            or abs(value - ranked) > max(_DRIFT * ranked, self._drift_floor)
        ):
            self._epoch += 1

    def attempt_started(self, node: str) -> None:
        """A hedge or a failure started one more attempt on ``node``."""
        with self._lock:
            self._nodes[node].pending += 1
            self._in_flight += 1

    def attempt_abandoned(self, node: str) -> None:
        """An attempt on ``node`` in the calling thread was interrupted (KeyboardInterrupt...):
        no longer pending, and not the node's failure."""
        with self._lock:
            self._nodes[node].pending -= 1
            self._in_flight -= 1

    # -- outcomes (each attempt records its own, winners and late losers alike) --

    def record_success(
        self,
        node: str,
        latency: float,
        role: Role | None,
        discarded: bool,
        returned: bool = False,
    ) -> None:
        """An attempt on ``node`` connected after ``latency`` s; ``discarded``: closed unused;
        ``returned``: its connect() returns it (:meth:`record_outcome` in the same breath)."""
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._fold()
            if returned:
                self._connects += 1
            n = self._nodes[node]
            n.pending -= 1
            self._in_flight -= 1
            n.connects += 1
            if discarded:
                n.discarded += 1
            elif n.served < self._trial_serves:
                n.served += 1
                self._epoch += 1  # it may have come off trial (see SelectionPolicy)
            n.last_success_at = wall
            self._observe(n, latency, now)
            # Calls skipped when nothing changes: this runs on every connect.
            role_change = None if role is None else self._set_role(n, role)
            change = None if n.state == "up" else self._set_state(n, "up", now, wall, "")
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "cluster %r: node %s connected in %.1f ms%s",
                self.name,
                node,
                latency * _MS,
                " (discarded)" if discarded else "",
            )
        if change is not None:
            self._log_change(change)
        if role_change is not None:
            self._log_role_change(role_change)

    def record_returned(self, node: str, latency: float, role: Role | None) -> None:
        """As :meth:`record_success` with ``returned=True``, for the connection that the
        first attempt of a connect() made in the calling thread: when it changes nothing but
        counters and the latency estimate (the node up, off trial, its role as known), the
        bookkeeping is queued, with no lock, for :meth:`fold`.

        The node is read without the lock: a change that lands between that read and the
        queueing is taken as having come after this connect.
        """
        n = self._nodes[node]
        if n.state != "up" or n.served < self._trial_serves or (role and role != n.role):
            self.record_success(node, latency, role, False, returned=True)
            return
        self._outbox.append((n, latency, time.monotonic(), time.time()))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("cluster %r: node %s connected in %.1f ms", self.name, node, latency * _MS)

    def fold(self) -> None:
        """Do the bookkeeping :meth:`record_returned` queued. A connect's first attempt calls
        this while it waits for its server; everything that reads or changes the nodes under
        the lock does it first, so no reader ever sees a connect half-counted."""
        if self._outbox:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        outbox = self._outbox
        while outbox:
            n, latency, now, wall = outbox.popleft()
            self._connects += 1
            n.pending -= 1
            self._in_flight -= 1
            n.connects += 1
            n.last_success_at = wall
            self._observe(n, latency, now)

    def record_discarded(self, node: str) -> None:
        """A connection to ``node``, recorded as a success, was closed unused after all (a
        primary held aside for ``prefer-replica`` while a replica answered)."""
        with self._lock:
            self._nodes[node].discarded += 1

    def record_failure(self, node: str, exc: BaseException, line: str | None = None) -> None:
        """An attempt on ``node`` failed with ``exc`` (``line``: its scrubbed one-line form)."""
        if line is None:
            line = self.redactor.one_line(exc)
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._fold()
            n = self._nodes[node]
            n.pending -= 1
            self._in_flight -= 1
            n.connect_errors += 1
            n.last_error = line
            n.last_error_at = wall
            change = self._set_state(n, "down", now, wall, line)
        log.debug("cluster %r: node %s failed: %s", self.name, node, line)
        self._log_change(change)
        watcher = self._watched_by  # close() may clear it at any time
        if change is not None and watcher is not None:
            watcher.node_failed(self, node)

    def record_hedge(self, node: str, elapsed: float) -> None:
        """``node`` has not answered after ``elapsed`` s: rank it down now, not at its timeout."""
        now = time.monotonic()
        with self._lock:
            self._fold()
            n = self._nodes[node]
            n.latency = n.latency.observe_lower_bound(elapsed, now)
            self._epoch += 1
        log.debug(
            "cluster %r: node %s silent after %.1f ms, hedging", self.name, node, elapsed * _MS
        )

    def record_probe(
        self,
        node: str,
        ok: bool,
        rtt: float | None = None,
        role: Role | None = None,
        lag: float | None = None,
        exc: BaseException | None = None,
        latency: float | None = None,
        stopped: bool = False,
    ) -> None:
        """The monitor probed ``node``: ``ok`` with its connect ``latency``, round trip, role,
        lag and whether its replication has ``stopped``, or ``exc``."""
        line = None if ok or exc is None else self.redactor.one_line(exc)
        now, wall = time.monotonic(), time.time()
        with self._lock:
            self._fold()
            n = self._nodes[node]
            n.probes += 1
            if ok:
                n.last_success_at = wall
                # A probe's connect keeps the estimate of a node that gets no traffic (outside
                # the latency window) up to date, but only downwards: measured on a worker
                # thread, it includes waits for the GIL while the application runs (3-6 ms
                # against 0.12 ms measured), so it bounds the node's latency from above.
                if latency is not None:
                    current = n.latency.value_at(now)
                    if current is None or latency < current:
                        self._observe(n, latency, now)
                if rtt is not None:
                    n.rtt = n.rtt.observe(rtt, now)
                role_change = self._set_role(n, role)
                replication_change = n.replication_stopped != stopped
                if n.lag != lag or replication_change:
                    self._epoch += 1
                n.lag = lag
                n.replication_stopped = stopped
                change = self._set_state(n, "up", now, wall, "")
            else:
                role_change = replication_change = None
                n.probe_errors += 1
                if line is not None:
                    n.last_error = line
                    n.last_error_at = wall
                change = self._set_state(n, "down", now, wall, line or "probe failed")
        self._log_change(change)
        self._log_role_change(role_change)
        if replication_change:
            if stopped:
                log.warning(
                    "cluster %r: node %s: replication stopped (applies no more changes; "
                    "skipped under max_lag)",
                    self.name,
                    node,
                )
            else:
                log.info("cluster %r: node %s: replication running again", self.name, node)

    # -- errors seen on established connections (issue 13; to move into node_state) --

    def record_read_only(self, node: str) -> None:
        """A connection to ``node`` was refused a write as read-only: it is not primary."""
        with self._lock:
            self._fold()
            role_change = self._set_role(self._nodes[node], "replica")
        self._log_role_change(role_change)

    def record_lost(self, node: str, exc: BaseException) -> None:
        """A connection to ``node`` was lost: the node is suspect (its next probe decides)."""
        line = self.redactor.one_line(exc)
        with self._lock:
            n = self._nodes[node]
            n.last_error = line
            n.last_error_at = time.time()
        log.debug("cluster %r: node %s: a connection was lost: %s", self.name, node, line)

    def request_check(self) -> None:
        """Have the monitor re-read every node's role now (it rate-limits such requests)."""
        watcher = self._watched_by  # close() may clear it at any time
        if watcher is not None:
            watcher.request_check(self)

    @property
    def epoch(self) -> int:
        """Changes whenever a kept ranking may no longer hold (read without the lock)."""
        return self._epoch

    def record_outcome(self, ok: bool) -> None:
        """One connect() returned a connection (``ok``) or raised."""
        with self._lock:
            if ok:
                self._connects += 1
            else:
                self._failures += 1

    def _set_state(
        self, n: _Node, state: NodeState, now: float, wall: float, detail: str
    ) -> _Change | None:
        old = n.state
        if old == state:
            return None
        self._epoch += 1
        n.state = state
        n.state_changes += 1
        n.last_state_change_at = wall
        if state == "down":
            n.down_since, n.down_since_epoch = now, wall
        else:
            if n.down_since_epoch is not None:
                detail = f"after {wall - n.down_since_epoch:.1f} s down"
                # Back from down: its estimate predates the outage (or is a probe's, taken on
                # a worker thread), so it is on trial again, judged by one connect measured
                # where connections are made (issue 13: a restarted replica got no share).
                n.served = 0
            n.down_since = n.down_since_epoch = None
        return (n.name, old, state, n.address, detail)

    def _set_role(self, n: _Node, role: Role | None) -> tuple[str, Role, Role] | None:
        if role is None or role == n.role:
            return None
        self._epoch += 1
        old, n.role = n.role, role
        return (n.name, old, role)

    def _log_role_change(self, change: tuple[str, Role, Role] | None) -> None:
        if change is None:
            return
        node, old, new = change
        if old == "unknown":
            log.debug("cluster %r: node %s is a %s", self.name, node, new)
        elif new == "primary":
            log.warning("cluster %r: node %s was promoted: %s -> primary", self.name, node, old)
        else:
            log.warning("cluster %r: node %s is no longer primary: now %s", self.name, node, new)

    def _log_change(self, change: _Change | None) -> None:
        if change is None:
            return
        node, old, new, address, detail = change
        if new == "down":
            log.warning("cluster %r: node %s (%s) is down: %s", self.name, node, address, detail)
        elif old == "down":
            log.info("cluster %r: node %s (%s) is up, %s", self.name, node, address, detail)
        else:
            log.debug("cluster %r: node %s (%s) is up", self.name, node, address)

    # -- operator actions --

    def drain(self, node: str) -> None:
        """Give ``node`` no new connections until :meth:`undrain` (open ones are untouched)."""
        self._set_drained(node, True)

    def undrain(self, node: str) -> None:
        """Put a drained ``node`` back into rotation."""
        self._set_drained(node, False)

    def _set_drained(self, node: str, drained: bool) -> None:
        with self._lock:
            n = self._nodes.get(node)
            if n is not None:
                changed, n.drained = n.drained != drained, drained
                self._epoch += 1
        if n is None:
            raise InterfaceError(
                f"cluster {self.name!r} has no node {node!r} (nodes: {', '.join(self._nodes)})"
            )
        if changed:
            log.info(
                "cluster %r: node %s %s", self.name, node, "drained" if drained else "undrained"
            )

    # -- stats --

    def stats_snapshot(self) -> ClusterStats:
        """Every node's counters and estimates, taken at one moment."""
        now = time.monotonic()
        with self._lock:
            self._fold()
            nodes = tuple(n.snapshot(now) for n in self._nodes.values())
            connects, failures = self._connects, self._failures
        return ClusterStats(
            name=self.name,
            driver=self.adapter.name,
            nodes=nodes,
            connects=connects,
            failures=failures,
            taken_at=datetime.now(UTC),
        )

    def reset_stats(self) -> None:
        """Zero counters and timestamps; keep estimates, state, role and pending attempts."""
        with self._lock:
            self._fold()  # connects made before the reset are not counted after it
            for n in self._nodes.values():
                n.reset_counters()
            self._connects = self._failures = 0

    # -- process lifecycle --

    def probe(self, node: str) -> bool:
        """Probe ``node`` now (connect, role, lag) and record it; True when it answered."""
        return probe_node(self, node)

    def watch(self, watcher: Watcher) -> None:
        """Have ``watcher`` (the process's monitor) watch this cluster; cheap once it does."""
        if not self.config.options.monitor:
            return
        if self._watched_by is not watcher:  # first use, after close(), or in a forked child
            watcher.watch(self)
            self._watched_by = watcher

    def close(self) -> None:
        """Stop this cluster's background work (it is being unregistered or replaced)."""
        self.retired = True
        watcher, self._watched_by = self._watched_by, None
        if watcher is not None:  # it holds clusters weakly; unwatch() makes the end immediate
            watcher.unwatch(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: the parent's attempt threads and lock holders do not exist."""
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._fold()  # the parent's returned connections, counted as the parent counted them
        self._in_flight = 0
        for n in self._nodes.values():
            n.pending = 0
