"""Which nodes a connect() tries, in which order, with which hedge delays: :func:`plan`.

A pure function of a :class:`~clusterdb.core.description.ClusterDescription` and an injected
random source, so every rule is tested by scenario tables (PyMongo's server selection is the
model).

1. **Fit.** :func:`~clusterdb.core.roles.unfit_reason`: drained, a Galera node not synced, a
   known wrong role, or a replica lagging more than ``max_lag``; every node left out gets its
   reason in :attr:`Plan.rejected`.
2. **Down nodes last resort.** Fitting ``down`` nodes are offered only when no other node
   fits, and then raced (the monitor may not have seen the recovery yet).
3. **Role tiers.** :data:`~clusterdb.core.roles.TIERS`: known roles before unknown ones, whose
   role is checked on connect.
4. **Within a tier:** ``up`` nodes with an estimate inside the latency window of the cheapest,
   and those on trial, in a weighted random order
   (:class:`~clusterdb.core.policies.SelectionPolicy`), the others by increasing cost; then
   nodes without an estimate, in registration order.
5. **Race or hedge.** No estimate in the plan: every node starts at once (delays 0,
   ``race=True``); otherwise each node gets its delay from
   :class:`~clusterdb.core.policies.HedgePolicy`.
6. **Single writer.** When the description names a ``writer`` (the ``single_writer``
   option) and it fits, ``primary`` tries it first, then the other primaries in registration
   order (the writers next in line), with no race and no hedge (infinite delays): only a
   failure starts the next node.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import permutations, product
from math import log as _log
from operator import itemgetter
from types import MappingProxyType

from clusterdb.core.description import ClusterDescription, NodeDescription, WantedRole
from clusterdb.core.policies import HedgePolicy, SelectionPolicy
from clusterdb.core.roles import TIERS, WANTED_ROLES, unfit_reason

__all__ = ["Plan", "Ranking", "plan", "rank"]

_DEFAULT_SELECTION = SelectionPolicy()
_DEFAULT_HEDGE = HedgePolicy()


@dataclass(frozen=True)
class Plan:
    """The outcome of selection: what to try, in which order, how long to wait on each."""

    nodes: tuple[str, ...]
    """Node names in the order to try; empty when no node fits."""
    hedge_delays: tuple[float, ...]
    """``hedge_delays[i]``: seconds to wait on ``nodes[i]`` before also starting
    ``nodes[i + 1]``; 0.0 starts the next one at once."""
    race: bool
    """True when every node is started at once: nothing known to rank them, or only down
    nodes fit. False for an empty plan."""
    rejected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Node name -> why it is not in the plan ("drained", "role primary, wanted replica")."""


@dataclass(frozen=True)
class Ranking:
    """The deterministic part of a plan: what :func:`rank` found, before any random draw.

    A ranking stays right while nothing it was made from changes, so a caller may keep it and
    :meth:`draw` a fresh :class:`Plan` from it per connect() (the cluster does, see
    :meth:`~clusterdb.runtime.cluster.Cluster.begin`).
    """

    groups: tuple[tuple[tuple[str, ...], tuple[float, ...]], ...]
    """In order: ``(names, weights)``; a group with weights is drawn in a weighted random
    order (a latency window), a group without is taken as it stands."""
    delays: Mapping[str, float]
    """Node name -> its hedge delay (0.0 in a race)."""
    race: bool
    """Every node is started at once (see :attr:`Plan.race`)."""
    rejected: Mapping[str, str]
    """Node name -> why it is not in any plan drawn from this ranking."""
    plans: tuple[tuple[float, ...], tuple[Plan, ...]] | None = None
    """Every plan the draw can give, with the running sum of their chances, when there are
    few (a window of up to 3 nodes): a draw is then one random number and a lookup."""

    def __post_init__(self) -> None:
        # Worked out once per ranking, so a draw allocates only the plan it returns: per
        # group, its names, their delays, and the inverse weights of a window (None: fixed).
        steps = tuple(
            (names, tuple(map(self.delays.__getitem__, names)), _inverse(weights))
            for names, weights in self.groups
        )
        object.__setattr__(self, "_steps", steps)

    def draw(self, rng: random.Random) -> Plan:
        """One plan: each latency window in a weighted random order drawn from ``rng``.

        O(k log k) for a window of k nodes (one key per node, one sort); the groups around
        it are tuples worked out when the ranking was made."""
        if self.plans is not None:
            chances, plans = self.plans
            if len(plans) == 1:
                return plans[0]
            index = bisect.bisect_right(chances, rng.random() * chances[-1])
            return plans[min(index, len(plans) - 1)]  # rounding can leave it at the end
        nodes: tuple[str, ...] = ()
        delays: tuple[float, ...] = ()
        step: _Step
        for step in self._steps:  # type: ignore[attr-defined]
            names, fixed, inverse = step
            if inverse is None:
                nodes += names
                delays += fixed
            else:
                order = _weighted_order(names, inverse, rng)
                nodes += order
                delays += tuple(map(self.delays.__getitem__, order))
        return Plan(nodes=nodes, hedge_delays=delays, race=self.race, rejected=self.rejected)

    def _plan(self, nodes: Sequence[str]) -> Plan:
        return Plan(
            nodes=tuple(nodes),
            hedge_delays=tuple(map(self.delays.__getitem__, nodes)),
            race=self.race,
            rejected=self.rejected,
        )

    def with_plans(self) -> Ranking:
        """This ranking with :attr:`plans` worked out, when there are at most
        ``_FEW_PLANS`` of them (the chance of an order is the product, step by step, of
        each next node's weight over the weights left)."""
        choices: list[list[tuple[float, tuple[str, ...]]]] = []
        count = 1
        for names, weights in self.groups:
            if not weights:
                choices.append([(1.0, names)])
                continue
            if len(names) > _FEW_PLANS:
                return self
            count *= math.factorial(len(names))
            if count > _FEW_PLANS:
                return self
            choices.append([_chance(names, weights, order) for order in permutations(names)])
        chances: list[float] = []
        plans: list[Plan] = []
        total = 0.0
        for combination in product(*choices):
            chance = math.prod(c for c, _ in combination)
            total += chance
            chances.append(total)
            plans.append(self._plan([n for _, order in combination for n in order]))
        return replace(self, plans=(tuple(chances), tuple(plans)))


_FEW_PLANS = 6


def _chance(
    names: Sequence[str], weights: Sequence[float], order: Sequence[str]
) -> tuple[float, tuple[str, ...]]:
    weight = dict(zip(names, weights, strict=True))
    left = sum(weights)
    chance = 1.0
    for name in order[:-1]:
        chance *= weight[name] / left if left > 0 else 0.0
        left -= weight[name]
    return chance, tuple(order)


def plan(
    desc: ClusterDescription,
    wanted: WantedRole = "any",
    *,
    rng: random.Random,
    max_lag: float | None = None,
    selection: SelectionPolicy = _DEFAULT_SELECTION,
    hedge: HedgePolicy = _DEFAULT_HEDGE,
    now: float | None = None,
) -> Plan:
    """The plan for one connect() asking for ``wanted``; see the module docstring.

    ``now`` (monotonic seconds) only makes the reason given for a down node say for how long.
    Raises ValueError for an unknown ``wanted``. The same as ``rank(...).draw(rng)``.
    """
    ranking = rank(desc, wanted, max_lag=max_lag, selection=selection, hedge=hedge, now=now)
    return ranking.draw(rng)


def rank(
    desc: ClusterDescription,
    wanted: WantedRole = "any",
    *,
    max_lag: float | None = None,
    selection: SelectionPolicy = _DEFAULT_SELECTION,
    hedge: HedgePolicy = _DEFAULT_HEDGE,
    now: float | None = None,
) -> Ranking:
    """Everything of :func:`plan` but the random draw."""
    if wanted not in TIERS:
        raise ValueError(f"unknown role {wanted!r}: expected one of {', '.join(WANTED_ROLES)}")
    rejected: dict[str, str] = {}
    live: list[NodeDescription] = []
    down: list[NodeDescription] = []
    for node in desc.nodes:
        reason = unfit_reason(node, wanted, max_lag)
        if reason is not None:
            rejected[node.name] = reason
        elif node.state == "down":
            down.append(node)
        else:
            live.append(node)
    groups: list[tuple[tuple[NodeDescription, ...], tuple[float, ...]]] = []
    writer = next((n for n in live if n.name == desc.writer), None) if wanted == "primary" else None
    if live:
        for node in down:
            rejected[node.name] = _down_reason(node, now)
        if writer is not None:  # the writer, then the next in line, as preferred_writer walks
            groups.append(((writer,), ()))
            groups += [(tuple(t), ()) for t in _tiers([n for n in live if n is not writer], wanted)]
        else:
            for tier in _tiers(live, wanted):
                groups.extend(_order_tier(tier, selection))
        race = writer is None and all(n.latency is None for names, _ in groups for n in names)
    else:
        groups = [(tuple(_by_cost(tier, selection)), ()) for tier in _tiers(down, wanted)]
        race = True
    groups = [g for g in groups if g[0]]
    nodes = [n for names, _ in groups for n in names]
    # Under a single writer only a failure starts the next node: a hedge would split writes.
    if race or writer:
        delays = dict.fromkeys([n.name for n in nodes], 0.0 if race else math.inf)
    else:
        delay = hedge.delay
        delays = {n.name: delay(n) for n in nodes}
    return Ranking(
        groups=tuple((tuple([n.name for n in names]), weights) for names, weights in groups),
        delays=MappingProxyType(delays),
        race=race and bool(nodes),
        rejected=MappingProxyType(rejected),
    )


def _down_reason(node: NodeDescription, now: float | None) -> str:
    since = ""
    if now is not None and node.down_since is not None:
        since = f" for {max(0.0, now - node.down_since):.1f} s"
    return f"down{since} (not offered while another node fits)"


def _tiers(nodes: Sequence[NodeDescription], wanted: WantedRole) -> list[list[NodeDescription]]:
    tiers = TIERS[wanted]
    if len(tiers) == 1:  # "any": every role in one tier
        return [list(nodes)]
    return [[n for n in nodes if n.role in roles] for roles in tiers]


def _order_tier(
    nodes: Sequence[NodeDescription], selection: SelectionPolicy
) -> list[tuple[tuple[NodeDescription, ...], tuple[float, ...]]]:
    """A tier as groups: its latency window with weights, then the fixed rest."""
    # One pass, each cost computed once.
    measured: list[tuple[float, NodeDescription]] = []
    unmeasured: list[NodeDescription] = []
    unproven: list[NodeDescription] = []
    cost = selection.cost  # never None here: the node has an estimate
    for n in nodes:
        if n.state == "unknown":
            unproven.append(n)
        elif n.state != "up":
            continue
        elif n.latency is None:
            unmeasured.append(n)
        else:
            measured.append((cost(n), n))  # type: ignore[arg-type]
    rest = tuple(unmeasured + unproven)
    if not measured:
        return [(rest, ())]
    measured.sort(key=_first)  # stable: ties keep registration order
    fastest = measured[0][0]
    limit = selection.limit(fastest)
    inside = sum(1 for c, _ in measured if c <= limit)
    trials: list[NodeDescription] = []
    others: list[NodeDescription] = [n for _, n in measured[inside:]]
    if selection.trial_weight:
        on_trial = selection.on_trial
        trials = [n for n in others if on_trial(n)]
        if trials:
            others = [n for n in others if not on_trial(n)]
    if inside == 1 and not trials:
        return [(tuple([n for _, n in measured]) + rest, ())]
    weights = [selection.weight(c, fastest) for c, _ in measured[:inside]]
    weights += [selection.trial_weight] * len(trials)
    window = tuple([n for _, n in measured[:inside]] + trials)
    return [(window, tuple(weights)), (tuple(others) + rest, ())]


_first = itemgetter(0)


def _cost(node: NodeDescription, selection: SelectionPolicy) -> float:
    cost = selection.cost(node)
    return float("inf") if cost is None else cost


def _by_cost(nodes: Sequence[NodeDescription], selection: SelectionPolicy) -> list[NodeDescription]:
    """Increasing cost, unknown cost last; ties keep registration order (sorted is stable)."""
    return sorted(nodes, key=lambda n: _cost(n, selection))


def _inverse(weights: Sequence[float]) -> tuple[float, ...] | None:
    """``1 / weight`` per node of a window (a huge number for a zero weight), None when the
    group is no window."""
    if not weights:
        return None
    return tuple(1.0 / w if w > 0.0 else _NO_WEIGHT for w in weights)


_NO_WEIGHT = 1e300
"""The inverse weight of a zero weight: drawn after every weighted node."""

_Step = tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...] | None]


def _weighted_order(
    items: Sequence[str], inverse: Sequence[float], rng: random.Random
) -> tuple[str, ...]:
    """Weighted random order without replacement, each next item drawn ∝ its weight, given
    as ``inverse = 1 / weight``: Efraimidis and Spirakis' keys ``log(u) / weight`` (u uniform
    on (0, 1]), largest first. The order of exponential clocks of rates ``weight``: the same
    law as drawing the items one by one, in one pass and one sort instead of k passes."""
    if len(items) == 1:
        return tuple(items)
    rand = rng.random
    keys = [_log(1.0 - rand()) * i for i in inverse]
    return tuple([items[i] for i in sorted(range(len(items)), key=keys.__getitem__, reverse=True)])
