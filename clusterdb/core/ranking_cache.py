"""Rankings kept between connects: ranking is most of what planning costs, and a healthy
cluster's ranking rarely changes.

A kept ranking is drawn from again while three things hold: no change that can alter it has
ended its epoch (:meth:`RankingCache.invalidate`: state, role, lag, drain, a hedge, a node
coming off trial), it is younger than ``ttl`` (every estimate decays at the same rate, less
than 10 % in 1 s), and no node's latency estimate has left the band it was ranked within
(:meth:`RankingCache.band`). Whether attempts pending allow keeping one is the caller's rule.
"""

from __future__ import annotations

import math

from clusterdb.core.description import ClusterDescription, WantedRole
from clusterdb.core.selection import Ranking

__all__ = ["DEFAULT_DRIFT", "DEFAULT_TTL", "WORK_OUT_AFTER", "Kept", "RankingCache"]

DEFAULT_TTL = 1.0
"""Seconds a ranking is kept at most."""
DEFAULT_DRIFT = 0.1
"""Relative move of a node's estimate that ends a ranking (when above the floor too)."""

_EMPTY = (math.inf, -math.inf)


WORK_OUT_AFTER = 8
"""Draws from a kept ranking after which it is worked out (:meth:`Ranking.with_plans`): that
costs about ten plain draws of a 3-node window, and a ranking replaced sooner (a node's
estimate leaving its band, on 40-70 % of connects on a busy machine) never pays it back."""

Kept = tuple[int, float, Ranking, ClusterDescription, int]
"""(epoch, end on the ``now`` clock, ranking, the description it was made from, draws from
it so far): a plain tuple, since Python 3.11 reads a NamedTuple's fields on its slow,
generic path."""


class RankingCache:
    """One kept ranking per wanted role, valid for the epoch it was stored in.

    ``floor``: seconds a node's estimate may always move without ending a ranking; below it,
    re-ranking chases noise (see docs/design/state.md).
    """

    __slots__ = ("drift", "epoch", "floor", "kept", "ttl")

    def __init__(
        self, floor: float = 0.0, ttl: float = DEFAULT_TTL, drift: float = DEFAULT_DRIFT
    ) -> None:
        self.floor = floor
        self.ttl = ttl
        self.drift = drift
        self.epoch = 0
        self.kept: dict[WantedRole, Kept] = {}

    def get(self, wanted: WantedRole, now: float) -> Kept | None:
        """The ranking kept for ``wanted``, when its epoch stands and it is younger than ttl."""
        kept = self.kept.get(wanted)
        if kept is not None and kept[0] == self.epoch and now < kept[1]:
            return kept
        return None

    def store(
        self, wanted: WantedRole, ranking: Ranking, description: ClusterDescription, now: float
    ) -> None:
        """Keep ``ranking`` (made from ``description`` at ``now``) for the current epoch."""
        self.kept[wanted] = (self.epoch, now + self.ttl, ranking, description, 1)

    def reuse(self, wanted: WantedRole, kept: Kept) -> Ranking:
        """The ranking of ``kept`` (what :meth:`get` gave for ``wanted``) for one more draw;
        at the :data:`WORK_OUT_AFTER`-th, worked out and kept so (ski rental: the work is
        paid only by rankings that have already served as many draws as it costs)."""
        epoch, end, ranking, description, draws = kept
        if draws >= WORK_OUT_AFTER:  # worked out already (or too many plans to)
            return ranking
        draws += 1
        if draws == WORK_OUT_AFTER:
            ranking = ranking.with_plans()
        self.kept[wanted] = (epoch, end, ranking, description, draws)
        return ranking

    def invalidate(self) -> None:
        """End the epoch: no ranking kept so far is drawn from again."""
        self.epoch += 1

    def band(self, ranked: float | None) -> tuple[float, float]:
        """The estimates a node ranked at ``ranked`` s may move within, kept ranking and all:
        ``ranked ± max(drift * ranked, floor)``; empty when it was ranked with no estimate."""
        if ranked is None:
            return _EMPTY
        tolerance = max(self.drift * ranked, self.floor)
        return ranked - tolerance, ranked + tolerance
