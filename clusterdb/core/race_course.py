"""The decisions of one connect race (pure): which attempt starts when, what an answer
changes, when the race ends. Both racers (threads and asyncio) run their plans through it,
so hedging, failing over and the ``prefer-replica`` fallback are decided in one place.

The caller starts attempts, waits until :meth:`RaceCourse.wake_at` or an answer, and tells
the course what happened; each call returns the next :data:`Step`. Times are the caller's
monotonic seconds.
"""

from __future__ import annotations

import math
from typing import Literal

from clusterdb.core.selection import Plan

__all__ = ["RaceCourse", "Step"]

Step = Literal["wait", "start", "hedge", "fallback", "give_up"]
"""``wait``: for the next answer or :meth:`~RaceCourse.wake_at`; ``start``: the next node
(:meth:`~RaceCourse.start_next`), an attempt having failed; ``hedge``: the same, the
current one being silent past its hedge delay (record :meth:`~RaceCourse.silent`);
``fallback``: use the primary held aside; ``give_up``: every node tried failed or the
deadline passed."""

_NEVER = math.inf


class RaceCourse:
    """One race's state: attempts started and outstanding, the next hedge, a primary held
    aside for ``prefer-replica`` (at most ``fallback_wait`` s, and no further node is started
    meanwhile: only attempts already running can beat it), and each node's error."""

    __slots__ = (
        "deadline",
        "delays",
        "errors",
        "fallback_wait",
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

    def start_next(self, now: float) -> int:
        """Start the next node at ``now``: its plan index."""
        index = self.started
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
