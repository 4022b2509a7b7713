"""The decisions of one connect race (pure): which attempt starts when, what an answer
changes, when the race ends. Both racers (threads and asyncio) run their plans through it,
so hedging, failing over and the ``prefer-replica`` fallback are decided in one place.

The caller starts attempts, waits until :meth:`RaceCourse.wake_at` or an answer, and tells
the course what happened; each call returns the next :data:`Step`. Times are the caller's
monotonic seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from clusterdb.core.selection import Plan

__all__ = ["HedgeBudget", "HedgeLedger", "RaceCourse", "Step"]

Step = Literal["wait", "start", "hedge", "fallback", "give_up"]
"""``wait``: for the next answer or :meth:`~RaceCourse.wake_at`; ``start``: the next node
(:meth:`~RaceCourse.start_next`), an attempt having failed; ``hedge``: the same, the
current one being silent past its hedge delay (record :meth:`~RaceCourse.silent`);
``fallback``: use the primary held aside; ``give_up``: every node tried failed or the
deadline passed."""

_NEVER = math.inf


@dataclass(frozen=True)
class HedgeBudget:
    """How many hedges may be in flight: ``hedging < minimum + ratio * connecting``.

    ``hedging``: hedges started by connects still in flight; ``connecting``: connects in
    flight. A hedge pays when one node is silent; when every connect is slow at once (a burst
    on a busy machine), hedges are spare server connections that make it slower still. The
    budget (gRPC's hedging throttle and Finagle's retry budget in spirit: a share of the
    traffic, plus a floor) keeps a burst of 200 connects from opening 600 attempts.

    A connect holds at most one unit: its first hedge takes it, and its later hedges (past a
    node silent too) need no other, so a connect that holds one always walks its plan and
    gives the unit back when it ends: hedges stuck on hung nodes cannot starve the others.
    ``hedging`` therefore counts connects that hedged. A hedge refused is asked again one
    hedge delay later (:meth:`RaceCourse.deferred`); failures start the next node whatever
    the budget.
    """

    ratio: float = 0.1
    minimum: float = 2.0

    def allows(self, hedging: int, connecting: int) -> bool:
        """Whether one more hedge may start."""
        return hedging < self.minimum + self.ratio * connecting


class HedgeLedger:
    """One cluster's connects and hedges in flight, against its :class:`HedgeBudget`.

    Not thread-safe: the caller holds its lock around every call."""

    __slots__ = ("budget", "connecting", "hedging")

    def __init__(self, budget: HedgeBudget | None = None) -> None:
        self.budget = budget if budget is not None else HedgeBudget()
        self.connecting = 0
        self.hedging = 0

    def try_hedge(self) -> bool:
        """Count one more hedge in flight when the budget allows it; whether it does."""
        if self.budget.allows(self.hedging, max(self.connecting, 1)):  # its own connect
            self.hedging += 1
            return True
        return False


class RaceCourse:
    """One race's state: attempts started and outstanding, the next hedge, a primary held
    aside for ``prefer-replica`` (at most ``fallback_wait`` s, and no further node is started
    meanwhile: only attempts already running can beat it), and each node's error."""

    __slots__ = (
        "deadline",
        "delays",
        "errors",
        "fallback_wait",
        "hedges",
        "held",
        "last_start",
        "next_hedge",
        "nodes",
        "outstanding",
        "started",
        "timeout",
        "use_fallback_at",
    )

    def __init__(self, plan: Plan, began: float, timeout: float, fallback_wait: float) -> None:
        """``plan``'s first attempts (every node of a race, else the first) start at
        ``began``; the race ends ``timeout`` s later at the latest."""
        self.nodes, self.delays = plan.nodes, plan.hedge_delays
        self.timeout = timeout
        self.deadline = began + timeout
        self.fallback_wait = fallback_wait
        self.started = len(plan.nodes) if plan.race else 1
        self.outstanding = self.started
        self.last_start = began
        self.next_hedge = began + self.delays[0] if self.started < len(self.nodes) else _NEVER
        self.use_fallback_at = _NEVER
        self.hedges = 0
        """Hedges started; the first takes a unit of the cluster's :class:`HedgeBudget`
        until the race ends (:attr:`needs_budget`)."""
        self.held: int | None = None
        """Plan index of the ``prefer-replica`` primary held aside, if any."""
        self.errors: dict[str, tuple[BaseException, str]] = {}
        """Node -> (error, its scrubbed line), for the nodes that failed."""

    @property
    def opening(self) -> range:
        """Plan indexes of the attempts that start at once."""
        return range(self.started)

    @property
    def tried(self) -> tuple[str, ...]:
        return self.nodes[: self.started]

    def wake_at(self) -> float:
        """When to call :meth:`timer` if no answer comes first."""
        return min(self.deadline, self.next_hedge, self.use_fallback_at)

    def timer(self, now: float) -> Step:
        """No answer came by ``now``."""
        if self.held is not None and now >= min(self.use_fallback_at, self.deadline):
            return "fallback"  # no replica answered in time
        if now >= self.deadline:
            return "give_up"
        if now < self.next_hedge:
            return "wait"
        return "hedge"

    def silent(self, now: float) -> tuple[str, float]:
        """The node hedged at ``now`` and how long it has been silent: a latency lower bound."""
        return self.nodes[self.started - 1], now - self.last_start

    def failed(self, index: int, error: BaseException, line: str) -> Step:
        """The attempt on ``nodes[index]`` failed (or answered with the wrong role)."""
        self.outstanding -= 1
        self.errors[self.nodes[index]] = (error, line)
        return self._answered()

    def offered(self, index: int, now: float) -> tuple[bool, Step]:
        """A ``prefer-replica`` attempt on ``nodes[index]`` got a primary: True when it is
        held aside (the first one), False when it is to be closed (one is enough)."""
        self.outstanding -= 1
        held = self.held is None
        if held:
            self.held = index
            self.use_fallback_at = now + self.fallback_wait
            self.next_hedge = _NEVER
        return held, self._answered()

    def _answered(self) -> Step:
        if self.held is not None:
            return "fallback" if self.outstanding == 0 else "wait"  # nothing left to beat it
        if self.started == len(self.nodes):
            return "give_up" if self.outstanding == 0 else "wait"
        return "start"

    @property
    def needs_budget(self) -> bool:
        """Whether a hedge now would take a unit of the hedge budget (the race's first)."""
        return self.hedges == 0

    @property
    def following(self) -> str:
        """The node :meth:`start_next` would start."""
        return self.nodes[self.started]

    def deferred(self, now: float) -> None:
        """The hedge due at ``now`` was refused (:class:`HedgeBudget`): ask again one hedge
        delay of the silent node later."""
        self.next_hedge = now + self.delays[self.started - 1]

    def start_next(self, now: float, hedge: bool = False) -> int:
        """Start the next node at ``now`` (``hedge``: past a silent one): its plan index."""
        index = self.started
        self.hedges += hedge
        self.started += 1
        self.outstanding += 1
        self.last_start = now
        more = self.started < len(self.nodes)
        self.next_hedge = now + self.delays[index] if more else _NEVER
        return index

    def late_failure(self, index: int, error: BaseException, line: str) -> None:
        """A failure that arrived after the race ended (kept unless the node has one)."""
        self.errors.setdefault(self.nodes[index], (error, line))

    def report(self) -> tuple[dict[str, tuple[BaseException | None, str]], BaseException | None]:
        """Every node tried -> (its error, or None when it never answered; the line), and
        the last error in plan order (the cause to chain)."""
        silent = f"no answer within {self.timeout:g} s (connect_timeout)"
        tried = self.tried
        errors = self.errors
        out: dict[str, tuple[BaseException | None, str]] = {
            node: errors.get(node) or (None, silent) for node in tried
        }
        last = next((errors[n][0] for n in reversed(tried) if n in errors), None)
        return out, last
