"""The chaos fault schedule: a pure function of a seed and the cluster's shape.

``make_schedule(seed, nodes, duration)`` draws faults with ``random.Random(seed)`` only, so the
same seed gives the same schedule on any machine (a failed run is replayed by its printed
seed). The generator simulates the harness's roles as it goes (a promote or switchover makes
its target the primary), so every fault names a node that is in the right role when it is due.

Rules, each one a reason a run can be judged:

* **One fault per node at a time**: a node's next fault starts after its previous one ended.
* **At most ``concurrency`` faults at once**, so a fitting node is usually left up.
* **Topology changes alone**: a promote or switchover starts only when no other fault is
  active and nothing else starts until it ended (the harness fences the old primary; with every
  replica streaming and caught up, no acknowledged write can be lost by the harness itself).
* **Replication delay on replicas only**; promote and switchover target a replica.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["FAULT_KINDS", "TOPOLOGY", "Fault", "FaultKind", "make_schedule"]

FaultKind = Literal[
    "kill",  # SIGKILL the server, start it again after `duration`
    "hang",  # SIGSTOP, SIGCONT after `duration`
    "restart",  # clean stop and start (duration 0: the restart's own time)
    "deaf",  # the proxy accepts and forwards nothing for `duration`
    "refuse",  # the proxy refuses connects and resets connections for `duration`
    "latency",  # the proxy delays every chunk by `amount` seconds for `duration`
    "repl_delay",  # a replica applies changes `amount` seconds late for `duration`
    "promote",  # the primary is fenced (stopped), `node` promoted; the old one rejoins later
    "switchover",  # `node` promoted and the old primary follows it at once
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
TOPOLOGY: frozenset[FaultKind] = frozenset({"promote", "switchover"})
"""Fault kinds that change which node is the primary."""

_DISRUPTIVE_MAX = 3.0  # longest kill/hang/deaf/refuse: long enough to cross a heartbeat


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` on node index ``node`` at ``at`` seconds into the run, lasting
    ``duration`` seconds (when its end action runs); ``amount`` is the latency or replication
    delay in seconds (0 for other kinds)."""

    at: float
    kind: FaultKind
    node: int
    duration: float
    amount: float = 0.0

    @property
    def ends(self) -> float:
        return self.at + self.duration

    def describe(self, names: Sequence[str]) -> str:
        amount = f" {self.amount * 1000:.0f} ms" if self.amount else ""
        return f"t+{self.at:5.1f}s {self.kind}{amount} {names[self.node]} for {self.duration:.1f}s"


@dataclass(frozen=True)
class _State:
    primary: int
    busy_until: tuple[float, ...]  # per node: when its current fault ends
    exclusive_until: float  # a topology change in progress: nothing may start before


def _duration(kind: FaultKind, rng: random.Random) -> tuple[float, float]:
    """(duration, amount) for a fault of ``kind``."""
    if kind == "restart" or kind == "switchover":
        return 0.0, 0.0
    if kind == "latency":
        return round(rng.uniform(1.0, 4.0), 2), round(rng.uniform(0.005, 0.05), 3)
    if kind == "repl_delay":
        return round(rng.uniform(1.0, 4.0), 2), float(rng.randint(1, 3))
    if kind == "promote":
        return round(rng.uniform(0.5, 2.0), 2), 0.0
    return round(rng.uniform(0.5, _DISRUPTIVE_MAX), 2), 0.0


def _candidates(kind: FaultKind, state: _State, at: float, concurrency: int) -> list[int]:
    """The nodes ``kind`` may hit at ``at``."""
    free = [i for i, until in enumerate(state.busy_until) if until <= at]
    active = sum(1 for until in state.busy_until if until > at)
    if at < state.exclusive_until or active >= concurrency:
        return []
    replicas = [i for i in free if i != state.primary]
    if kind in TOPOLOGY:
        return replicas if active == 0 else []
    if kind == "repl_delay":
        return replicas
    return free


def make_schedule(
    seed: int,
    nodes: int,
    duration: float,
    *,
    kinds: Sequence[FaultKind] = FAULT_KINDS,
    concurrency: int = 2,
    gap: tuple[float, float] = (0.8, 2.5),
    start: float = 1.0,
) -> tuple[Fault, ...]:
    """Faults for a run of ``duration`` seconds on ``nodes`` nodes (node 0 the primary at first).

    A fault is tried every ``gap`` seconds (uniform) from ``start``; its kind is drawn from
    ``kinds`` and its node among those the rules allow (no fault when none is). Every fault
    ends by ``duration``. The result depends on the arguments only.
    """
    if nodes < 1:
        raise ValueError("nodes must be >= 1")
    rng = random.Random(seed)
    state = _State(primary=0, busy_until=(0.0,) * nodes, exclusive_until=0.0)
    faults: list[Fault] = []
    at = start
    while True:
        at = round(at + rng.uniform(*gap), 2)
        kind = rng.choice(list(kinds))
        length, amount = _duration(kind, rng)
        if at + length > duration:
            break
        targets = _candidates(kind, state, at, concurrency)
        if not targets:
            continue
        node = rng.choice(targets)
        fault = Fault(at=at, kind=kind, node=node, duration=length, amount=amount)
        faults.append(fault)
        busy = list(state.busy_until)
        busy[node] = fault.ends
        exclusive = state.exclusive_until
        primary = state.primary
        if kind in TOPOLOGY:
            # The old primary rejoins at the end; nothing else starts before. A switchover's
            # own time is unknown here: leave a margin for it.
            exclusive = fault.ends + (2.0 if kind == "switchover" else 0.0)
            busy[primary] = max(busy[primary], exclusive)
            primary = node
        state = _State(primary=primary, busy_until=tuple(busy), exclusive_until=exclusive)
    return tuple(faults)
