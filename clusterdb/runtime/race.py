"""The race: the waiting thread's side of running a :class:`~clusterdb.core.selection.Plan`
within one deadline, its attempts on worker threads (:mod:`clusterdb.runtime.attempts`).

The first node starts (every node, for a race plan); the next one starts when the current one
fails or has not answered within its hedge delay; the first connection claimed wins. Every
attempt records its own outcome when it ends, winners, late losers and attempts abandoned at
the deadline alike, so stats stay exact whatever the timing.

A role that fits only as a fallback (:func:`~clusterdb.core.roles.role_is_fallback`:
``prefer-replica``'s primary) is held aside, for at most the hedge policy's ``max_delay``,
while attempts already running may still bring a better node; no further node starts for it.
"""

from __future__ import annotations

import math
import queue
from collections.abc import Callable
from enum import Enum, auto
from functools import partial
from time import monotonic
from typing import Any, NamedTuple

from clusterdb.core.description import WantedRole
from clusterdb.core.redact import Redactor
from clusterdb.core.selection import Plan
from clusterdb.drivers.base import Pending
from clusterdb.errors import AllNodesFailed, bind_to_driver
from clusterdb.runtime.attempts import Attempts, Result
from clusterdb.runtime.cluster import Cluster

__all__ = ["Attempt", "Begun", "always", "race"]

Attempt = Callable[[str, float], Any]
"""``attempt(node, timeout)``: open a connection to ``node`` within ``timeout`` seconds."""


class Begun(NamedTuple):
    """The plan's first attempt, begun in the calling thread by :func:`.connect.begin_here`."""

    outcome: Any  # what DriverAdapter.start gave (a connection, a Pending) or raised
    at: float  # when it began (time.monotonic()); the deadline runs from then


class _Step(Enum):
    WAIT = auto()  # for the next result or timer
    NEXT = auto()  # start the next node of the plan
    FALLBACK = auto()  # use the connection held aside
    GIVE_UP = auto()


_NEVER = math.inf


def always(node: str) -> bool:
    return True


def race(
    cluster: Cluster,
    plan: Plan,
    attempt: Attempt,
    *,
    timeout: float,
    wanted: WantedRole = "any",
    detect: Callable[[str], bool] = always,
    redactor: Redactor | None = None,
    begun: Begun | None = None,
) -> Any:
    """Run ``plan`` (its first attempts already counted pending by ``cluster.begin``).

    Returns the winning connection; raises the driver-bound :class:`AllNodesFailed` when every
    attempt failed or ``timeout`` seconds passed. ``detect(node)``: whether to read the role of
    a connection to ``node``; one of a role that does not fit ``wanted`` is closed, counted as
    discarded, and the next node is tried. ``begun``: the plan's first attempt began already.
    """
    began = monotonic() if begun is None else begun.at
    state = _Race(cluster, attempt, timeout, wanted, detect, redactor or cluster.redactor, began)
    return state.run(plan, begun)


class _Race:
    __slots__ = (
        "attempt",
        "attempts",
        "cluster",
        "deadline",
        "delays",
        "errors",
        "fallback",
        "fallback_at",
        "fallback_wait",
        "last_start",
        "next_hedge",
        "nodes",
        "outstanding",
        "results",
        "started",
        "timeout",
    )

    def __init__(
        self,
        cluster: Cluster,
        attempt: Attempt,
        timeout: float,
        wanted: WantedRole,
        detect: Callable[[str], bool],
        redactor: Redactor,
        began: float,
    ) -> None:
        self.cluster = cluster
        self.attempt = attempt
        self.timeout = timeout
        self.deadline = began + timeout
        self.attempts = Attempts(cluster, self.deadline, wanted, detect, redactor)
        self.results = self.attempts.results
        self.nodes: tuple[str, ...] = ()
        self.delays: tuple[float, ...] = ()
        self.started = 0  # nodes started, in plan order
        self.outstanding = 0  # attempts started whose result has not arrived
        self.last_start = began
        self.next_hedge = _NEVER
        self.errors: dict[str, tuple[BaseException, str]] = {}
        # (plan index, connection) of a fallback held aside, until fallback_at at the latest.
        self.fallback: tuple[int, Any] | None = None
        self.fallback_at = _NEVER
        self.fallback_wait = cluster.options.hedge.max_delay

    def run(self, plan: Plan, begun: Begun | None) -> Any:
        try:
            return self._run(plan, begun)
        except BaseException:
            self._abandon()  # a no-op after giving up: the race is abandoned already
            raise

    def _run(self, plan: Plan, begun: Begun | None) -> Any:
        self._open(plan, begun)
        while True:
            wake = min(self.deadline, self.next_hedge, self.fallback_at)
            try:
                result = self.results.get(timeout=max(0.0, wake - monotonic()))
            except queue.Empty:
                step = self._on_timer(monotonic())
            else:
                if result.conn is not None and not result.fallback:
                    self._drop_fallback()
                    return result.conn
                step = self._on_result(result)
            if step is _Step.NEXT:
                self._start_next()
            elif step is _Step.FALLBACK:
                return self._take_fallback()
            elif step is _Step.GIVE_UP:
                return self._give_up()

    def _open(self, plan: Plan, begun: Begun | None) -> None:
        """Start the plan's first node (every node of a race), or carry on with ``begun``."""
        self.nodes, self.delays = plan.nodes, plan.hedge_delays
        self.started = self.outstanding = len(self.nodes) if plan.race else 1
        if begun is not None:
            self._carry_on(self.nodes[0], begun)
        else:
            for index, node in enumerate(self.nodes[: self.started]):
                self.attempts.launch(index, node, partial(self.attempt, node))
            self.last_start = monotonic()
        if self.started < len(self.nodes):
            self.next_hedge = self.last_start + self.delays[0]

    def _carry_on(self, node: str, begun: Begun) -> None:
        """The first attempt began in the calling thread: its outcome goes to the results
        like a worker's, or a worker finishes it (a :class:`Pending`: the server is silent)."""
        outcome = begun.outcome
        if isinstance(outcome, Exception):
            self.attempts.failed(0, node, outcome)
        elif isinstance(outcome, Pending):
            self.attempts.launch(0, node, outcome.finish, begun.at, outcome.cancel)
        else:
            self.attempts.connected(0, node, outcome, begun.at, here=True)

    def _on_timer(self, now: float) -> _Step:
        if self.fallback is not None and now >= min(self.fallback_at, self.deadline):
            return _Step.FALLBACK  # no better node answered in time
        if now >= self.deadline:
            return _Step.GIVE_UP
        if now < self.next_hedge:
            return _Step.WAIT
        self.cluster.record_hedge(self.nodes[self.started - 1], now - self.last_start)
        return _Step.NEXT

    def _on_result(self, result: Result) -> _Step:
        """A failure, or a fallback; a winner never gets here."""
        self.outstanding -= 1
        if result.fallback:
            self._hold(result.position, result.conn)
        else:
            assert result.error is not None
            self.errors[self.nodes[result.position]] = (result.error, result.line)
        if self.fallback is not None:
            # With nothing running, nothing can bring a better node.
            return _Step.FALLBACK if self.outstanding == 0 else _Step.WAIT
        if self.started == len(self.nodes):
            return _Step.GIVE_UP if self.outstanding == 0 else _Step.WAIT
        return _Step.NEXT  # an attempt failed: the next node starts at once

    def _start_next(self) -> None:
        index = self.started
        node = self.nodes[index]
        self.cluster.attempt_started(node)
        self.attempts.launch(index, node, partial(self.attempt, node))
        self.started += 1
        self.outstanding += 1
        self.last_start = monotonic()
        if self.started < len(self.nodes):
            self.next_hedge = self.last_start + self.delays[index]
        else:
            self.next_hedge = _NEVER

    def _give_up(self) -> Any:
        if not self.attempts.abandon():
            # An attempt won just now: its connection is on its way (it is recording stats).
            return self._winner()
        tried, errors = self.nodes[: self.started], self.errors
        for failure in self._drain():  # failures that arrived since the deadline passed
            assert failure.error is not None
            errors.setdefault(tried[failure.position], (failure.error, failure.line))
        silent = f"no answer within {self.timeout:g} s (connect_timeout)"
        adapter = self.cluster.adapter
        ordered: dict[str, BaseException] = {}
        lines: dict[str, str] = {}
        for node in tried:
            exc, line = errors.get(node) or (adapter.operational_error(silent), silent)
            ordered[node], lines[node] = exc, line
        error_cls = bind_to_driver(AllNodesFailed, adapter.operational_error)
        last = next((errors[n][0] for n in reversed(tried) if n in errors), None)
        raise error_cls(self.cluster.name, ordered, lines) from last

    def _winner(self) -> Any:
        """The connection of the attempt that claimed the race (on its way in the queue);
        fallbacks handed over before the claim are closed on the way."""
        while True:
            result = self.results.get()
            if result.conn is None:
                continue
            if not result.fallback:
                return result.conn
            self._discard(result.position, result.conn)

    def _abandon(self) -> None:
        """Interrupted (KeyboardInterrupt...): let no connection escape unclosed."""
        if not self.attempts.abandon():
            self.cluster.adapter.close_quietly(self._winner())
        self._drop_fallback()
        self._drain()

    def _drain(self) -> list[Result]:
        """Empty the results: fallbacks handed over before the race was settled are closed,
        the failures returned."""
        failures: list[Result] = []
        while True:
            try:
                result = self.results.get_nowait()
            except queue.Empty:
                return failures
            if result.conn is not None:
                self._discard(result.position, result.conn)
            else:
                failures.append(result)

    # -- fallbacks --

    def _hold(self, index: int, conn: Any) -> None:
        if self.fallback is None:
            self.fallback = (index, conn)
            self.fallback_at = monotonic() + self.fallback_wait
            self.next_hedge = _NEVER  # only attempts already running can beat it
        else:
            self._discard(index, conn)  # one in hand is enough

    def _take_fallback(self) -> Any:
        """Use the fallback held aside: claim the race for it, unless a better node just did."""
        assert self.fallback is not None
        if self.attempts.claim():
            _, conn = self.fallback
            self.fallback = None
            return conn
        winner = self._winner()  # a better node claimed the race meanwhile: it wins after all
        self._drop_fallback()
        return winner

    def _drop_fallback(self) -> None:
        if self.fallback is not None:
            index, conn = self.fallback
            self.fallback = None
            self._discard(index, conn)

    def _discard(self, index: int, conn: Any) -> None:
        """Close a fallback that will not be used, and count it as discarded."""
        self.cluster.adapter.close_quietly(conn)
        self.cluster.record_discarded(self.nodes[index])
