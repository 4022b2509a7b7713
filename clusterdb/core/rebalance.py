"""Which pooled connections to keep, and which to move: pure policy for pools over a cluster.

A pool keeps the connections connect() gave it. Two rules decide what it should do with them as
the cluster changes, both functions of an immutable
:class:`~clusterdb.core.description.ClusterDescription`:

* :func:`assess` says which nodes a connection may stay on (:attr:`Assessment.fit`: up, not
  drained, of the wanted role, within ``max_lag``, not far slower than the fastest) and what
  share of new connections each node would get (:attr:`Assessment.shares`: the chance of being
  first in a plan drawn from the ranking). A connection on a node outside ``fit`` is dropped
  at its next checkout; one on a fitting node stays.
* :class:`Rebalancer` moves connections between fitting nodes, one at a time and no faster
  than :attr:`RebalancePolicy.spacing`: a connection checked in on a node holding more than
  its share is closed when another node holds less than its share (its replacement is made by
  connect(), which draws by the same shares). A node coming back thus regains its share
  gradually, never in a burst of reconnects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from clusterdb.core.description import ClusterDescription, WantedRole
from clusterdb.core.policies import SelectionPolicy
from clusterdb.core.roles import unfit_reason
from clusterdb.core.selection import rank

__all__ = ["Assessment", "RebalancePolicy", "Rebalancer", "assess"]

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
    least this many under (``max(threshold, band * pool size)``): shares wander with the
    latency estimates, and a pool must not chase that.
    """

    far: float = 4.0
    spacing: float = 0.25
    threshold: float = 0.75
    band: float = 0.05

    def __post_init__(self) -> None:
        for name, low in (("far", 1.0), ("spacing", 0.0), ("threshold", 0.0), ("band", 0.0)):
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
) -> Assessment:
    """The :class:`Assessment` of ``desc`` for connections asked for ``wanted``.

    Pending attempts are ignored (they make a node look busy for a moment, not slow).
    ``prefer-replica`` keeps connections on a primary (its share is zero while a replica
    fits), so they move gradually when a replica comes back.
    """
    selection = selection or SelectionPolicy()
    policy = policy or RebalancePolicy()
    nodes = tuple(replace(n, pending=0) if n.pending else n for n in desc.nodes)
    candidates = [
        n for n in nodes if n.state != "down" and unfit_reason(n, wanted, max_lag) is None
    ]
    measured = [n.latency for n in candidates if n.latency is not None]
    fit = frozenset(n.name for n in candidates)
    if measured:
        ceiling = policy.far * selection.limit(min(measured))
        fit = frozenset(
            n.name
            for n in candidates
            if n.latency is None or n.latency <= ceiling or selection.on_trial(n)
        )
    if not fit:
        return Assessment(frozenset())
    calm = ClusterDescription(desc.name, nodes)
    ranking = rank(calm, wanted, max_lag=max_lag, selection=selection)
    return Assessment(fit, MappingProxyType(_first_choice(ranking.groups, ranking.race, fit)))


def _first_choice(
    groups: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...],
    race: bool,
    fit: frozenset[str],
) -> dict[str, float]:
    """Each node's chance of coming first in a plan: a weighted window draws its first node
    in proportion to the weights; a race spreads evenly; otherwise the first node takes all."""
    if not groups:
        return {}
    names, weights = groups[0]
    if race:
        names = tuple(n for n in names if n in fit) or names
        return {n: 1.0 / len(names) for n in names}
    if not weights:
        return {names[0]: 1.0}
    total = sum(weights)
    if total <= 0:
        return {n: 1.0 / len(names) for n in names}
    return {n: w / total for n, w in zip(names, weights, strict=True) if w > 0}


class Rebalancer:
    """One pool's rebalancing decisions (mutable, not thread-safe: the caller locks).

    Knows how many of the pool's connections sit on each node (:meth:`opened`,
    :meth:`closed`) and when it last closed one to move it.
    """

    __slots__ = ("_counts", "_last", "policy")

    def __init__(self, policy: RebalancePolicy | None = None) -> None:
        self.policy = policy or RebalancePolicy()
        self._counts: dict[str, int] = {}
        self._last = -math.inf

    @property
    def counts(self) -> Mapping[str, int]:
        """Node -> the pool's open connections on it."""
        return MappingProxyType(self._counts)

    def opened(self, node: str) -> None:
        self._counts[node] = self._counts.get(node, 0) + 1

    def closed(self, node: str) -> None:
        left = self._counts.get(node, 0) - 1
        if left > 0:
            self._counts[node] = left
        else:
            self._counts.pop(node, None)

    def should_move(self, node: str, shares: Mapping[str, float], now: float) -> bool:
        """Whether to close the idle connection on ``node`` just checked in (``now``:
        monotonic seconds); True also counts as the move made (the spacing starts)."""
        if not shares or now < self._last + self.policy.spacing:
            return False
        total = sum(self._counts.values())
        if total <= 1:
            return False
        need = max(self.policy.threshold, self.policy.band * total)
        surplus = self._counts.get(node, 0) - shares.get(node, 0.0) * total
        if surplus < need:
            return False
        deficit = max(share * total - self._counts.get(n, 0) for n, share in shares.items())
        if deficit < need:
            return False
        self._last = now
        return True
