"""Raced and hedged connect attempts as tasks on the caller's event loop.

The asyncio counterpart of :mod:`clusterdb.runtime.racer`: the same plan (from
:meth:`Cluster.begin`), the same decisions (:class:`~clusterdb.core.race_course.RaceCourse`:
hedges, failing over, the ``prefer-replica`` fallback, giving up) and the same bookkeeping
(:class:`Cluster`'s ``record_*``), with attempts as tasks and hedge delays as loop timers
instead of threads and a queue. A plan's first attempt may have begun in the caller's task
(:func:`clusterdb.runtime.connect_async.connect_async`): the race goes on with it, a pending
attempt finished by a task. Nothing here blocks the loop: the cluster's lock is only ever
held for a few dictionary updates.

Rules that keep stats exact and leak nothing:

* every attempt records its own outcome when it ends, winners and late losers alike; an
  attempt still running when the race is won or given up at the deadline goes on until
  shortly after the deadline (its node's failure or a connection closed as discarded, as
  with threads);
* the first attempt to connect with a fitting role settles the race (no lock: one loop
  thread); an attempt that finds it settled closes its own connection;
* when the caller cancels (``asyncio.wait_for``, a cancelled request), every attempt is
  cancelled, closes what it opened and is counted as abandoned (not its node's failure),
  and any connection already handed over is closed, before the cancellation propagates; an
  attempt whose task was cancelled before it ran is counted and dropped the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping
from time import monotonic
from typing import Any, Literal

from clusterdb.core.description import WantedRole
from clusterdb.core.failures import all_failed, safe_error
from clusterdb.core.race_course import RaceCourse
from clusterdb.core.redact import Redactor
from clusterdb.core.roles import role_fits, role_is_fallback, wrong_role
from clusterdb.core.selection import Plan
from clusterdb.drivers.asyncio_base import AsyncAdapter, AsyncPending, wake
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.credentials import fresh
from clusterdb.runtime.pooled import tag

__all__ = ["race_async"]

# (plan index, connection or None, error or None, the error's scrubbed line, True for a
# prefer-replica fallback: a primary's connection handed over unclaimed)
_Result = tuple[int, Any, BaseException | None, str, bool]

# Attempts still running, so that none is garbage-collected mid-flight (asyncio keeps only
# weak references to tasks). A forked child keeps the few that were running in the parent
# (their loop does not run there): they are only references.
_running: set[asyncio.Task[None]] = set()

# An attempt ends this long after the race's deadline: the race, not an attempt that ran
# out of time at the same moment, ends a connect at its deadline, naming every silent node.
_GRACE = 0.05


async def race_async(
    cluster: Cluster,
    adapter: AsyncAdapter,
    plan: Plan,
    overrides: Mapping[str, Any],
    *,
    timeout: float,
    wanted: WantedRole,
    detect: Callable[[str], bool],
    redactor: Redactor,
    begun: tuple[Any, float] | None = None,
) -> Any:
    """Run ``plan`` (its first attempts already counted pending by ``cluster.begin``) on the
    running loop: the winning connection, or the driver-bound AllNodesFailed when every
    attempt failed or ``timeout`` (seconds) passed. ``begun``: the plan's first attempt began
    in the caller's task (:meth:`AsyncAdapter.start`), ``(what it gave or raised, when it
    began)``; the deadline runs from then."""
    began = monotonic() if begun is None else begun[1]
    race = _AsyncRace(cluster, adapter, plan, overrides, timeout, wanted, detect, redactor, began)
    return await race.run(begun)


class _AsyncRace:
    __slots__ = (
        "adapter",
        "attempts",
        "cluster",
        "course",
        "detect",
        "fallback",
        "inbox",
        "loop",
        "overrides",
        "redactor",
        "settled",
        "unsettled",
        "waiter",
        "wanted",
    )

    def __init__(
        self,
        cluster: Cluster,
        adapter: AsyncAdapter,
        plan: Plan,
        overrides: Mapping[str, Any],
        timeout: float,
        wanted: WantedRole,
        detect: Callable[[str], bool],
        redactor: Redactor,
        began: float,
    ) -> None:
        self.cluster = cluster
        self.adapter = adapter
        self.overrides = overrides
        self.wanted = wanted
        self.detect = detect
        self.redactor = redactor
        self.loop = asyncio.get_running_loop()
        self.course = RaceCourse(plan, began, timeout, cluster.options.hedge.max_delay)
        self.inbox: deque[_Result] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.settled: Literal["won", "abandoned"] | None = None
        self.attempts: list[asyncio.Task[None]] = []
        self.unsettled: set[int] = set()
        """Plan indexes of attempts started that have not recorded their outcome yet."""
        # prefer-replica: the (plan index, connection) of the primary the course holds aside.
        self.fallback: tuple[int, Any] | None = None

    # -- the caller's task --

    async def run(self, begun: tuple[Any, float] | None) -> Any:
        try:
            return await self._run(begun)
        except BaseException:
            if self.settled != "abandoned":  # not given up: cancelled (or a bug)
                await self._abandon()
            raise
        finally:
            self.cluster.race_ended(not self.course.needs_budget)

    async def _run(self, begun: tuple[Any, float] | None) -> Any:
        course = self.course
        if begun is not None:  # go on with it: a task finishes a pending attempt
            self.unsettled.add(0)
            if isinstance(begun[0], AsyncPending):
                self._launch(0, *begun)
            else:  # failed, or connected with a role to read or refuse: here and now
                await self._attempt(0, course.nodes[0], *begun)
        else:
            for index in course.opening:
                self.unsettled.add(index)
                self._launch(index)
        while True:
            result = await self._next(course.wake_at())
            now = monotonic()
            if result is None:
                step = course.timer(now)
                if step == "hedge":  # rank the silent node down now, not at its timeout
                    self.cluster.record_hedge(*course.silent(now))
            else:
                index, conn, exc, line, fallback = result
                if conn is not None and not fallback:
                    try:
                        await self._drop_fallback()
                    except BaseException:
                        await self._discard(index, conn)
                        raise
                    return conn
                if fallback:
                    held, step = course.offered(index, now)
                    if held:
                        self.fallback = (index, conn)
                    else:
                        await self._discard(index, conn)
                else:
                    assert exc is not None
                    step = course.failed(index, exc, line)
            if step == "fallback":
                return await self._take_fallback()
            if step == "give_up":
                return await self._give_up()
            if step != "wait":  # start the next node as well, a hedge if the budget allows
                hedge = step == "hedge"
                if not self.cluster.attempt_started(
                    course.following, hedge and course.needs_budget
                ):
                    course.deferred(now)
                    continue
                index = course.start_next(now, hedge)
                self.unsettled.add(index)
                self._launch(index)

    async def _next(self, until: float) -> _Result | None:
        """The next answer, or None when ``until`` (monotonic) came first."""
        if not self.inbox:
            delay = until - monotonic()
            if delay > 0:
                waiter = self.waiter = self.loop.create_future()
                timer = self.loop.call_later(delay, wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self.waiter = None
        return self.inbox.popleft() if self.inbox else None

    async def _give_up(self) -> Any:
        if self.settled == "won":  # its connection is in the inbox
            return await self._winner()
        self.settled = "abandoned"
        while self.inbox:  # answers that came since the deadline passed
            index, conn, exc, line, _ = self.inbox.popleft()
            if conn is not None:  # a fallback handed over just before
                await self._discard(index, conn)
            else:
                assert exc is not None
                self.course.late_failure(index, exc, line)
        report, last = self.course.report()
        error = all_failed(self.cluster.name, report, self.adapter.operational_error)
        raise error from last

    async def _winner(self) -> Any:
        """The connection of the attempt that settled the race; fallbacks ahead of it in
        the inbox are closed on the way."""
        while True:
            index, conn, _, _, fallback = self.inbox.popleft()
            if conn is None:
                continue
            if not fallback:
                return conn
            await self._discard(index, conn)

    async def _abandon(self) -> None:
        """Cancelled (or failed unexpectedly): cancel every attempt and close every
        connection handed over, then wait for the attempts to have closed theirs."""
        self.settled = "abandoned"
        running = [task for task in self.attempts if not task.done()]
        for task in running:
            task.cancel()
        await self._drop_fallback()
        while self.inbox:  # a winner or a fallback handed over: closed unused
            index, conn, _, _, _ = self.inbox.popleft()
            if conn is not None:
                await self._discard(index, conn)
        if running:
            await asyncio.wait(running)

    # -- prefer-replica fallbacks --

    async def _take_fallback(self) -> Any:
        """Use the primary held aside, unless a replica has just settled the race."""
        assert self.fallback is not None
        if self.settled is None:
            self.settled = "won"
            _, conn = self.fallback
            self.fallback = None
            return conn
        winner = await self._winner()
        await self._drop_fallback()
        return winner

    async def _drop_fallback(self) -> None:
        if self.fallback is not None:
            index, conn = self.fallback
            self.fallback = None
            await self._discard(index, conn)

    async def _discard(self, index: int, conn: Any) -> None:
        """Close a connection handed over that will not be used, and count it as discarded."""
        await self.adapter.close(conn)
        self.cluster.record_discarded(self.course.nodes[index])

    # -- attempts (tasks) --

    def _launch(self, index: int, begun: Any = None, started: float | None = None) -> None:
        node = self.course.nodes[index]
        task = self.loop.create_task(
            self._attempt(index, node, begun, started),
            name=f"clusterdb-connect-{self.cluster.name}-{node}",
        )
        _running.add(task)
        task.add_done_callback(_running.discard)
        # A task cancelled before it ran (the loop shutting down) never saw its own clean-up.
        task.add_done_callback(lambda _: self._abandoned(index, node, begun))
        self.attempts.append(task)

    def _abandoned(self, index: int, node: str, begun: Any = None) -> None:
        """The attempt on ``nodes[index]`` ends with no outcome (cancelled, interrupted):
        not the node's failure; a pending attempt it was to finish is dropped."""
        if index in self.unsettled:
            self.unsettled.discard(index)
            self.cluster.attempt_abandoned(node)
        if isinstance(begun, AsyncPending):
            begun.cancel()

    def _post(self, result: _Result) -> None:
        self.inbox.append(result)
        if self.waiter is not None:
            wake(self.waiter)

    async def _attempt(
        self, index: int, node: str, begun: Any = None, started: float | None = None
    ) -> None:
        """One attempt, or the rest of one ``begun`` at ``started`` in the caller's task (a
        pending attempt, an error, a connection): connect, read the role, settle, record."""
        adapter = self.adapter
        if started is None:
            # The node's latency counts from here: the wait for the loop to run this task is
            # the application's, not the node's.
            started = monotonic()
        try:
            remaining = self.course.deadline + _GRACE - monotonic()
            if begun is None:
                overrides = self.overrides
                if self.cluster.credentials is not None:
                    overrides = await self.cluster.credentials.overrides_async(overrides)
                conn = await adapter.connect(self.cluster.target(node), overrides, remaining)
            elif isinstance(begun, AsyncPending):
                conn = await begun.finish(remaining)
            elif isinstance(begun, Exception):
                raise begun
            else:
                conn = begun
        except Exception as exc:
            self._failed(index, node, exc)
            return
        except BaseException:  # cancelled (the caller gave up), interrupted: not the node's
            self._abandoned(index, node, begun)
            raise
        latency = monotonic() - started
        try:
            role = await self._role(node, conn)
        except Exception as exc:
            await adapter.close(conn)
            self._failed(index, node, exc)
            return
        except BaseException:
            await adapter.close(conn)
            self._abandoned(index, node)
            raise
        await self._connected(index, node, conn, latency, role)

    async def _role(self, node: str, conn: Any) -> Any:
        """The role read on ``conn`` when it is to be read, within the deadline."""
        if not self.detect(node):
            return None
        if self.adapter.role_is_free:
            return await self.adapter.detect_role(conn)
        try:
            async with asyncio.timeout(self.course.deadline + _GRACE - monotonic()):
                return await self.adapter.detect_role(conn)
        except TimeoutError:
            silent = f"no answer to the role query within {self.course.timeout:g} s"
            raise self.adapter.operational_error(f"{silent} (connect_timeout)") from None

    async def _connected(self, index: int, node: str, conn: Any, latency: float, role: Any) -> None:
        """An attempt got ``conn`` of ``role`` after ``latency`` s: settle, record, hand over."""
        adapter, cluster = self.adapter, self.cluster
        self.unsettled.discard(index)  # recorded below, whatever happens
        if not role_fits(self.wanted, role):
            await adapter.close(conn)
            cluster.record_success(node, latency, role, discarded=True)
            line = wrong_role(role, self.wanted)
            self._post((index, None, adapter.operational_error(line), line, False))
            self._primary_missed()
            return
        # No await from here to the hand-over: the race cannot be settled meanwhile.
        fallback = role_is_fallback(self.wanted, role)
        handed = self.settled is None
        if handed and not fallback:
            self.settled = "won"
        # Recorded before the hand-over, so that stats read after connect_async() count it.
        cluster.record_success(node, latency, role, discarded=not handed)
        if handed:
            tag(conn, cluster.tags[node])  # for node_of(), fits(), report_error()
            self._post((index, conn, None, "", fallback))
        else:
            await adapter.close(conn)

    def _failed(self, index: int, node: str, exc: BaseException) -> None:
        self.unsettled.discard(index)
        cluster = self.cluster
        redactor = fresh(self.redactor, cluster.redactor, cluster.credentials)
        line = redactor.one_line(exc)
        cluster.record_failure(node, exc, line)
        error = safe_error(redactor, exc, line, self.adapter.operational_error)
        self._post((index, None, error, line, False))
        self._primary_missed()

    def _primary_missed(self) -> None:
        """A primary attempt failed or found another role: have the monitor look for a
        promoted primary now, as connect() does."""
        if self.wanted == "primary":
            self.cluster.request_check()
