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

import queue
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import Any, NamedTuple

from clusterdb.core.description import WantedRole
from clusterdb.core.failures import all_failed
from clusterdb.core.race_course import RaceCourse, Step
from clusterdb.core.redact import Redactor
from clusterdb.core.roles import read_always
from clusterdb.core.selection import Plan
from clusterdb.drivers.base import Pending
from clusterdb.runtime.attempts import Attempts, Result
from clusterdb.runtime.cluster import Cluster

__all__ = ["Attempt", "Begun", "race"]

Attempt = Callable[[str, float], Any]
"""``attempt(node, timeout)``: open a connection to ``node`` within ``timeout`` seconds."""


class Begun(NamedTuple):
    """The plan's first attempt, begun in the calling thread by :func:`.connect.begin_here`."""

    outcome: Any  # what DriverAdapter.start gave (a connection, a Pending) or raised
    at: float  # when it began (time.monotonic()); the deadline runs from then


def race(
    cluster: Cluster,
    plan: Plan,
    attempt: Attempt,
    *,
    timeout: float,
    wanted: WantedRole = "any",
    detect: Callable[[str], bool] = read_always,
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
    state = _Race(
        cluster, plan, attempt, timeout, wanted, detect, redactor or cluster.redactor, began
    )
    return state.run(begun)


class _Race:
    __slots__ = (
        "attempt",
        "attempts",
        "began",
        "cluster",
        "course",
        "fallback",
        "results",
        "timeout",
    )

    def __init__(
        self,
        cluster: Cluster,
        plan: Plan,
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
        self.began = began
        self.attempts = Attempts(cluster, began + timeout, wanted, detect, redactor)
        self.results = self.attempts.results
        # The race's decisions (core.race_course, shared with the asyncio race).
        self.course = RaceCourse(plan, began, timeout, cluster.options.hedge.max_delay)
        # (plan index, connection) of the fallback the course holds aside.
        self.fallback: tuple[int, Any] | None = None

    def run(self, begun: Begun | None) -> Any:
        try:
            return self._run(begun)
        except BaseException:
            self._abandon()  # a no-op after giving up: the race is abandoned already
            raise
        finally:
            self.cluster.race_ended(not self.course.needs_budget)

    def _run(self, begun: Begun | None) -> Any:
        course = self.course
        self._open(begun)
        while True:
            try:
                result = self.results.get(timeout=max(0.0, course.wake_at() - monotonic()))
            except queue.Empty:
                step = self._on_timer(monotonic())
            else:
                if result.conn is not None and not result.fallback:
                    self._drop_fallback()
                    return result.conn
                step = self._on_result(result)
            if step in ("start", "hedge"):
                self._start_next(step == "hedge")
            elif step == "fallback":
                return self._take_fallback()
            elif step == "give_up":
                return self._give_up()

    def _open(self, begun: Begun | None) -> None:
        """Start the plan's first node (every node of a race), or carry on with ``begun``."""
        course = self.course
        if begun is not None:
            self._carry_on(course.nodes[0], begun)
        else:
            for index in course.opening:
                node = course.nodes[index]
                self.attempts.launch(index, node, partial(self.attempt, node))

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

    def _on_timer(self, now: float) -> Step:
        step = self.course.timer(now)
        if step == "hedge":  # rank the silent node down now, not at its timeout
            self.cluster.record_hedge(*self.course.silent(now))
        return step

    def _on_result(self, result: Result) -> Step:
        """A failure, or a fallback; a winner never gets here."""
        if not result.fallback:
            assert result.error is not None
            return self.course.failed(result.position, result.error, result.line)
        held, step = self.course.offered(result.position, monotonic())
        if held:
            self.fallback = (result.position, result.conn)
        else:
            self._discard(result.position, result.conn)  # one in hand is enough
        return step

    def _start_next(self, hedge: bool) -> None:
        """Start the next node, after a failure or as a hedge the budget allows."""
        course, now = self.course, monotonic()
        node = course.following
        if not self.cluster.attempt_started(node, hedge and course.needs_budget):
            course.deferred(now)
            return
        index = course.start_next(now, hedge)
        self.attempts.launch(index, node, partial(self.attempt, node))

    def _give_up(self) -> Any:
        if not self.attempts.abandon():
            # An attempt won just now: its connection is on its way (it is recording stats).
            return self._winner()
        for failure in self._drain():  # failures that arrived since the deadline passed
            assert failure.error is not None
            self.course.late_failure(failure.position, failure.error, failure.line)
        report, last = self.course.report()
        raise all_failed(
            self.cluster.name, report, self.cluster.adapter.operational_error
        ) from last

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
        self.cluster.record_discarded(self.course.nodes[index])
