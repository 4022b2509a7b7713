"""Which pooled connections to keep, and which to move: pure policy for pools over a cluster.

A pool keeps the connections connect() gave it. Two rules decide what it should do with them as
the cluster changes, both functions of an immutable
:class:`~clusterdb.core.description.ClusterDescription`:

* :func:`assess` says which nodes a connection may stay on (:attr:`Assessment.fit`: up, not
  drained, of the wanted role, within ``max_lag``, not far slower than the fastest) and what
  share of the pool each should hold (:attr:`Assessment.shares`: selection's weights, which
  fall with a node's cost, over the fitting nodes of the first role tier that has any). A
  connection on a node outside ``fit`` is dropped at its next checkout.
* :class:`Rebalancer` moves connections between fitting nodes, one at a time and no faster
  than :attr:`RebalancePolicy.spacing`: a connection checked in on a node holding more than
  its share is closed, and its replacement asked of connect() on the node furthest under its
  share. The shares a pool aims for are averaged over :attr:`RebalancePolicy.smoothing`
  seconds, and have no cut-off at the latency window's edge: latency estimates wander, and a
  pool must not follow each swing. A node coming back thus regains its share gradually,
  never in a burst of reconnects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from clusterdb.core.description import ClusterDescription, NodeDescription, WantedRole
from clusterdb.core.policies import MIN_COST, SelectionPolicy
from clusterdb.core.roles import TIERS, unfit_reason
from clusterdb.core.selection import Plan

__all__ = ["Assessment", "RebalancePolicy", "Rebalancer", "assess", "first_on"]

_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True)
class RebalancePolicy:
    """How far a node may fall behind before its connections go, and how fast they move.

    ``far``: a node whose latency estimate exceeds ``far`` times the limit of the fastest
    fitting node's latency window (:meth:`SelectionPolicy.limit`) is not fit; between the
    window and that, its connections stay and only rebalancing moves them (a margin, so that
    noise in the estimates does not drop connections). ``spacing``: seconds between two
    connections closed for rebalancing in one pool. ``threshold``: a node gives a connection
    up only when it holds at least this many connections over its share and another node at
    least this many under (``max(threshold, band * pool size)``). ``smoothing``: the time
    constant of the average of the shares a pool aims for.
    """

    far: float = 4.0
    spacing: float = 0.25
    threshold: float = 0.75
    band: float = 0.05
    smoothing: float = 2.0

    def __post_init__(self) -> None:
        bounds = (("far", 1.0), ("spacing", 0.0), ("threshold", 0.0), ("band", 0.0))
        for name, low in (*bounds, ("smoothing", 0.0)):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= low):
                raise ValueError(f"rebalance {name} must be a finite number >= {low:g}")


@dataclass(frozen=True)
class Assessment:
    """What a pool asking for one role may keep, at one moment."""

    fit: frozenset[str]
    """Nodes a connection may stay on."""
    shares: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    """Node -> share of new connections it would get (summing to 1 over the nodes that get
    any; empty when none fits)."""


def assess(
    desc: ClusterDescription,
    wanted: WantedRole,
    *,
    max_lag: float | None = None,
    selection: SelectionPolicy | None = None,
    policy: RebalancePolicy | None = None,
    best: Mapping[str, float] | None = None,
) -> Assessment:
    """The :class:`Assessment` of ``desc`` for connections asked for ``wanted``.

    Shares: 1 for a node inside the latency window of the quickest
    (``selection.limit(quickest)``), ``selection.weight(latency, limit)`` beyond it, by the
    node's ``best`` recent connect time where given (else its estimate; pending attempts
    never count),
    ``trial_weight`` at least for a node on trial, 1 for a node not measured yet; over the
    fitting nodes of the first tier that has any (``prefer-replica``: replicas, unknown
    roles, then primaries; so a primary keeps its connections, with no share, until a replica
    can take them). The best recent time, and no weighing inside the window, because
    connect times only ever gain noise (scheduling, a busy interpreter) and a pool's
    connections live long: nodes alike share alike, a node really further away less.
    """
    selection = selection or SelectionPolicy()
    policy = policy or RebalancePolicy()
    candidates = [
        n for n in desc.nodes if n.state != "down" and unfit_reason(n, wanted, max_lag) is None
    ]
    measured = [n.latency for n in candidates if n.latency is not None]
    fastest = max(MIN_COST, min(measured)) if measured else MIN_COST
    ceiling = policy.far * selection.limit(fastest)
    fit = [
        n for n in candidates if n.latency is None or n.latency <= ceiling or selection.on_trial(n)
    ]
    best = best or {}
    for roles in TIERS[wanted]:
        tier = [n for n in fit if n.role in roles]
        if tier:
            times = {n.name: best.get(n.name, n.latency) for n in tier}
            known = [t for t in times.values() if t is not None]
            quickest = max(MIN_COST, min(known)) if known else MIN_COST
            weights = {n.name: _weight(n, times[n.name], quickest, selection) for n in tier}
            total = sum(weights.values())
            shares = {name: w / total for name, w in weights.items() if w > 0}
            return Assessment(frozenset(n.name for n in fit), MappingProxyType(shares))
    return Assessment(frozenset())


def first_on(plan: Plan, node: str) -> Plan:
    """``plan`` with ``node`` tried first (a pool moving a connection there), when the plan
    has it and is not a race; the others keep their order and hedge delays."""
    if plan.race or node not in plan.nodes or plan.nodes[0] == node:
        return plan
    at = plan.nodes.index(node)
    order = (at, *(i for i in range(len(plan.nodes)) if i != at))
    return Plan(
        nodes=tuple(plan.nodes[i] for i in order),
        hedge_delays=tuple(plan.hedge_delays[i] for i in order),
        race=False,
        rejected=plan.rejected,
    )


def _weight(
    node: NodeDescription, latency: float | None, fastest: float, selection: SelectionPolicy
) -> float:
    if latency is None:
        return 1.0
    limit = selection.limit(fastest)
    weight = 1.0 if latency <= limit else selection.weight(latency, limit)
    return max(weight, selection.trial_weight) if selection.on_trial(node) else weight


class Rebalancer:
    """One pool's rebalancing decisions (mutable, not thread-safe: the caller locks).

    Knows how many of the pool's connections sit on each node (:meth:`opened`,
    :meth:`closed`) and when it last closed one to move it.
    """

    __slots__ = (
        "_aim",
        "_aimed_at",
        "_counts",
        "_found",
        "_last",
        "_settled",
        "_version",
        "policy",
    )

    def __init__(self, policy: RebalancePolicy | None = None) -> None:
        self.policy = policy or RebalancePolicy()
        self._counts: dict[str, int] = {}
        self._last = -math.inf
        self._aim: dict[str, float] = {}
        self._aimed_at: float | None = None
        self._found: Assessment | None = None
        self._version = 0  # changes with the counts and the aim
        self._settled: tuple[Assessment, int] | None = None

    @property
    def counts(self) -> Mapping[str, int]:
        """Node -> the pool's open connections on it."""
        return MappingProxyType(self._counts)

    def opened(self, node: str) -> None:
        self._counts[node] = self._counts.get(node, 0) + 1
        self._version += 1

    def settled(self, found: Assessment) -> bool:
        """True when the last decision on ``found``, with the pool and the aim as they are
        still, moved nothing: the next one would not either (a cheap test, at every checkin).
        A new assessment (made at least once a second) ends it."""
        settled = self._settled
        return settled is not None and settled[0] is found and settled[1] == self._version

    def closed(self, node: str) -> None:
        self._version += 1
        left = self._counts.get(node, 0) - 1
        if left > 0:
            self._counts[node] = left
        else:
            self._counts.pop(node, None)

    @property
    def aim(self) -> Mapping[str, float]:
        """The averaged shares the pool aims for."""
        return MappingProxyType(self._aim)

    def observe(self, found: Assessment, now: float) -> None:
        """Fold the assessment made at ``now`` into the averaged shares: weight
        ``1 - exp(-elapsed / smoothing)`` for the new shares; nodes no longer fit drop out.
        The same assessment again within a twentieth of ``smoothing`` changes nothing (this
        runs at every checkin)."""
        recent = self._aimed_at is not None and now - self._aimed_at < self.policy.smoothing / 20
        if found is self._found and recent:
            return
        self._found = found
        if self._aimed_at is None or self.policy.smoothing <= 0:
            self._aim = dict(found.shares)
        else:
            keep = math.exp(-max(0.0, now - self._aimed_at) / self.policy.smoothing)
            nodes = (set(self._aim) | set(found.shares)) & found.fit
            self._aim = {
                n: self._aim.get(n, 0.0) * keep + found.shares.get(n, 0.0) * (1.0 - keep)
                for n in nodes
            }
            total = sum(self._aim.values())
            if total > 0:
                self._aim = {n: share / total for n, share in self._aim.items()}
        self._aimed_at = now
        self._version += 1

    def move_to(self, node: str, found: Assessment, now: float) -> str | None:
        """Where to move the idle connection on ``node`` just checked in (``now``: monotonic
        seconds): the node furthest under its share, or None to keep it. A move counts as
        made (the spacing starts)."""
        self.observe(found, now)
        aim = self._aim
        if not aim or now < self._last + self.policy.spacing:
            return None
        total = sum(self._counts.values())
        if total <= 1:
            self._settled = (found, self._version)
            return None
        need = max(self.policy.threshold, self.policy.band * total)
        over = {n: count - aim.get(n, 0.0) * total for n, count in self._counts.items()}
        short, target = max((aim[n] * total - self._counts.get(n, 0), n) for n in aim)
        if short < need or max(over.values()) < need:
            self._settled = (found, self._version)  # no connection anywhere would move
            return None
        if over.get(node, 0.0) < need:
            return None
        self._last = now
        return target
