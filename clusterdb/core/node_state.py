"""One node's state machine: what each outcome does to what is known about the node.

The SDAM analogue of PyMongo's ``updated_topology_description()``, for one node: a transition
method changes the :class:`NodeRecord` in place and returns a :data:`Transition`, the events to
log and whether kept rankings must go. The record holds no lock and reads no clock: ``now`` is
the caller's monotonic time (selection's), ``wall`` epoch seconds (stats', turned into a
datetime only by :meth:`NodeRecord.snapshot`, so a connect allocates none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from clusterdb.core.causal import Position, format_position, later
from clusterdb.core.description import NodeDescription, NodeState, Role
from clusterdb.core.events import (
    DrainChanged,
    Event,
    GaleraChanged,
    ReplicationChanged,
    RoleChanged,
    StateChanged,
)
from clusterdb.core.galera import GaleraState, Topology, WsrepStatus, galera_state
from clusterdb.core.latency import LatencyEstimate
from clusterdb.core.stats import NodeStats

__all__ = ["RERANK", "UNCHANGED", "NodeRecord", "ProbeOutcome", "Transition"]

Transition = tuple[tuple[Event, ...], bool]
"""(events to log, in order; whether kept rankings must go). Any event implies the latter."""
UNCHANGED: Transition = ((), False)
RERANK: Transition = ((), True)

_REUSE_FOR = 0.05
"""Seconds an unchanged node's description is reused (its estimate decays < 0.5 % meanwhile)."""

# What reset_counters() zeroes: counts, and wall-clock moments (None until the first).
_COUNTS = ("connects", "connect_errors", "discarded", "probes", "probe_errors", "state_changes")
_MOMENTS = ("last_error_at", "last_success_at", "last_state_change_at")
_NO_BAND = (math.inf, -math.inf)


class ProbeOutcome(NamedTuple):
    """What one probe of a node found: it answered (``ok``) after a connect of ``latency`` s
    and a round trip of ``rtt`` s, with its ``role``, ``lag``, whether its replication has
    ``stopped``, its Galera ``wsrep`` status (None: no Galera provider) and a replica's
    ``applied`` log position; or it did not, with ``error``."""

    ok: bool
    latency: float | None = None
    rtt: float | None = None
    role: Role | None = None
    lag: float | None = None
    stopped: bool = False
    error: BaseException | None = None
    wsrep: WsrepStatus | None = None
    applied: Position | None = None


def _utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _transition(rerank: bool, *events: Event | None) -> Transition:
    if all(e is None for e in events):
        return RERANK if rerank else UNCHANGED
    return tuple(e for e in events if e is not None), True


@dataclass(slots=True, eq=False)
class NodeRecord:
    """One node's mutable state. Its owner serialises every call (the cluster's lock)."""

    name: str
    address: str = ""
    trial_serves: int = 1
    """Connections a node serves before it is off trial (see SelectionPolicy)."""
    topology: Topology = "auto"
    """How the node's wsrep status counts (the cluster's ``topology`` option)."""
    # -- described (as NodeDescription) --
    state: NodeState = "unknown"
    role: Role = "unknown"
    latency: LatencyEstimate = field(default_factory=LatencyEstimate)
    served: int = 0
    """Connections returned by connect(), counted up to trial_serves: a trial's end."""
    lag: float | None = None
    replication_stopped: bool = False
    galera: GaleraState | None = None
    drained: bool = False
    pending: int = 0
    down_since: float | None = None
    """``now`` of the failure that took it down (for selection)."""
    # -- counted, for stats --
    connects: int = 0
    connect_errors: int = 0
    discarded: int = 0
    probes: int = 0
    probe_errors: int = 0
    state_changes: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    last_state_change_at: float | None = None
    down_since_epoch: float | None = None
    applied: Position | None = None
    """A replica's applied log position at its last probe (read-your-writes tokens)."""
    rtt: LatencyEstimate = field(default_factory=LatencyEstimate)
    retired: bool = field(default=False, repr=False)
    """Removed from its cluster, or replaced by a changed node's record: its late results
    are not its to record (runtime.membership)."""
    observed_at: float | None = None
    """``now`` of the last connect that found the node up with its role read (a probe
    due within a heartbeat of it is skipped: :meth:`observation`)."""
    # -- caches --
    keep: tuple[float, float] = field(default=_NO_BAND, repr=False)
    """The band kept rankings ranked this node's estimate within (RankingCache.band)."""
    described: NodeDescription = field(init=False, repr=False)
    described_key: tuple[object, ...] = field(default=(), repr=False)
    described_until: float = field(default=-math.inf, repr=False)

    def __post_init__(self) -> None:
        self.described = self._describe(0.0)

    # -- reading --

    def describe(self, now: float) -> NodeDescription:
        """The node at ``now``; the last description while nothing in it changed, for up to
        50 ms (most nodes do not change between two connects)."""
        # What _describe() reads (the estimate as an object: a new one is a change).
        key = (
            self.state,
            self.role,
            self.latency,
            self.served,
            self.lag,
            self.replication_stopped,
            self.galera,
            self.drained,
            self.pending,
            self.down_since,
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
            galera=self.galera,
            drained=self.drained,
            pending=self.pending,
            down_since=self.down_since,
        )

    def snapshot(self) -> NodeStats:
        """The node's counters, estimates (ms) and moments (aware UTC)."""
        return NodeStats(
            name=self.name,
            address=self.address,
            state=self.state,
            role=self.role,
            pending=self.pending,
            last_error=self.last_error,
            latency_ms=_ms(self.latency.value),
            latency_min_ms=_ms(self.latency.minimum),
            rtt_ms=_ms(self.rtt.value),
            lag_s=self.lag,
            down_since=_utc(self.down_since_epoch),
            drained=self.drained,
            replication_stopped=self.replication_stopped,
            galera=self.galera,
            applied=format_position(self.applied),
            connects=self.connects,
            connect_errors=self.connect_errors,
            discarded=self.discarded,
            probes=self.probes,
            probe_errors=self.probe_errors,
            state_changes=self.state_changes,
            last_error_at=_utc(self.last_error_at),
            last_success_at=_utc(self.last_success_at),
            last_state_change_at=_utc(self.last_state_change_at),
        )

    def reset_counters(self) -> None:
        """Zero the counts and forget the moments; estimates and state stay."""
        for k in _COUNTS:
            setattr(self, k, 0)
        for k in _MOMENTS:
            setattr(self, k, None)
        self.last_error = None

    # -- transitions --

    def on_connected(
        self, latency: float, role: Role | None, now: float, wall: float, discarded: bool
    ) -> Transition:
        """An attempt connected after ``latency`` s and saw ``role`` (None: not read);
        ``discarded``: its connection was closed unused. Counted, observed, role set, up."""
        rerank = self.on_returned(latency, now, wall)
        if role is not None:
            self.observed_at = now
        if discarded:
            self.discarded += 1
        elif self.served < self.trial_serves:
            self.served += 1
            rerank = True  # it may have come off trial
        if self.state == "up" and (role is None or role == self.role):
            return RERANK if rerank else UNCHANGED  # calls saved: this runs on connects
        role_changed = self._set_role(role)
        return _transition(rerank, self._set_state("up", now, wall, ""), role_changed)

    def on_returned(self, latency: float, now: float, wall: float) -> bool:
        """A connect that changes nothing but counters and the estimate (the node up, off
        trial, its role as known): counted and observed. True when rankings must go."""
        self.connects += 1
        self.last_success_at = wall
        self.latency, value = self.latency.observed(latency, now)  # _observe(), inlined:
        low, high = self.keep  # this runs on every connect
        return not low <= value <= high

    def observation(self, max_lag: float | None) -> float | None:
        """When a connect last saw what a probe would read, or None: never, or never
        enough (a replica's lag under ``max_lag``, a Galera node's state: only probes read
        those)."""
        if self.galera is not None or (max_lag is not None and self.role == "replica"):
            return None
        return self.observed_at

    def on_failed(self, line: str, now: float, wall: float) -> Transition:
        """An attempt failed with ``line`` (scrubbed, one line): counted, the node down."""
        self.connect_errors += 1
        return self.on_connection_lost(line, now, wall)

    def on_connection_lost(self, line: str, now: float, wall: float) -> Transition:
        """A connection to the node broke with ``line``: the node is down until proven up."""
        self.last_error = line
        self.last_error_at = wall
        return _transition(False, self._set_state("down", now, wall, line))

    def on_read_only_error(self) -> Transition:
        """The node refused a write as read-only: a replica until a connect or probe says."""
        return _transition(False, self._set_role("replica"))

    def on_hedge(self, elapsed: float, now: float) -> Transition:
        """No answer after ``elapsed`` s (a hedge fired): its estimate becomes at least that."""
        self.latency = self.latency.observe_lower_bound(elapsed, now)
        return RERANK

    def on_probe(
        self, outcome: ProbeOutcome, now: float, wall: float, line: str | None = None
    ) -> Transition:
        """The monitor probed the node (``line``: ``outcome.error`` scrubbed, one line).

        A probe's connect only ever lowers the estimate: it runs on a worker thread whose
        time includes waits for the GIL, so it bounds the node's latency from above.
        """
        self.probes += 1
        if not outcome.ok:
            self.probe_errors += 1
            if line is not None:
                self.last_error = line
                self.last_error_at = wall
            return _transition(False, self._set_state("down", now, wall, line or "probe failed"))
        self.last_success_at = wall
        rerank = False
        if outcome.latency is not None:
            current = self.latency.value_at(now)
            if current is None or outcome.latency < current:
                rerank = self._observe(outcome.latency, now)
        if outcome.rtt is not None:
            self.rtt = self.rtt.observe(outcome.rtt, now)
        role_changed = self._set_role(outcome.role)
        replication = None
        if self.replication_stopped != outcome.stopped:
            replication = ReplicationChanged(self.name, outcome.stopped)
        rerank = rerank or self.lag != outcome.lag
        self.lag, self.replication_stopped = outcome.lag, outcome.stopped
        self.applied = outcome.applied
        galera = self._set_galera(galera_state(outcome.wsrep, self.topology))
        return _transition(
            rerank, self._set_state("up", now, wall, ""), role_changed, replication, galera
        )

    def learn_applied(self, position: Position) -> None:
        """A connection to the node reported its applied ``position`` (positions only grow:
        the later one is kept until the next probe says)."""
        self.applied = later(self.applied, position)

    def on_drained(self, drained: bool) -> Transition:
        """An operator drained the node (``drained``) or put it back into rotation."""
        if self.drained == drained:
            return UNCHANGED
        self.drained = drained
        return _transition(True, DrainChanged(self.name, drained))

    def _observe(self, latency: float, now: float) -> bool:
        self.latency, value = self.latency.observed(latency, now)
        low, high = self.keep
        return not low <= value <= high

    def _set_role(self, role: Role | None) -> RoleChanged | None:
        if role is None or role == self.role:
            return None
        old, self.role = self.role, role
        return RoleChanged(self.name, old, role)

    def _set_galera(self, state: GaleraState | None) -> GaleraChanged | None:
        if state == self.galera:
            return None
        old, self.galera = self.galera, state
        return GaleraChanged(self.name, old, state)

    def _set_state(
        self, state: NodeState, now: float, wall: float, detail: str
    ) -> StateChanged | None:
        if state == self.state:
            return None
        old, self.state = self.state, state
        self.state_changes += 1
        self.last_state_change_at = wall
        if state == "down":
            self.down_since, self.down_since_epoch = now, wall
        else:
            if self.down_since_epoch is not None:
                detail = f"after {wall - self.down_since_epoch:.1f} s down"
                # Back from down: its estimate predates the outage (or is a probe's), so it is
                # on trial again, judged by one connect made where connections are made.
                self.served = 0
            self.down_since = self.down_since_epoch = None
        return StateChanged(self.name, old, state, self.address, detail)
