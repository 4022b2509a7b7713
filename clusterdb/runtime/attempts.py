"""The attempts of one race, as the worker threads see them: each connects within what is left
of the deadline, checks the role of its connection, settles the race, records its outcome, and
reports to the waiting thread (:mod:`clusterdb.runtime.race`) through ``results``.

A successful attempt must *claim* the race before handing its connection over; the waiting
thread *abandons* it when it gives up. Whichever comes first settles the race, and an attempt
that finds it settled closes its own connection: no connection leaks, whatever the timing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from time import monotonic
from typing import Any, Literal, NamedTuple

from clusterdb.core.description import Role, WantedRole
from clusterdb.core.failures import safe_error
from clusterdb.core.redact import Redactor
from clusterdb.core.roles import role_fits, role_is_fallback, wrong_role
from clusterdb.runtime import process
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.credentials import fresh
from clusterdb.runtime.pooled import tag

__all__ = ["Attempts", "Result"]


class Result(NamedTuple):
    """What an attempt hands the waiting thread."""

    position: int  # the node's, in the plan
    conn: Any  # None when the attempt failed
    error: BaseException | None
    line: str  # the error's scrubbed one-line text
    fallback: bool  # a connection of a fallback role, handed over unclaimed


class Attempts:
    """The attempt threads' side of one race, and the state they share with its waiting
    thread: ``results`` and whether the race is settled."""

    __slots__ = (
        "cluster",
        "deadline",
        "detect",
        "lock",
        "redactor",
        "results",
        "settled",
        "wanted",
    )

    def __init__(
        self,
        cluster: Cluster,
        deadline: float,
        wanted: WantedRole,
        detect: Callable[[str], bool],
        redactor: Redactor,
    ) -> None:
        self.cluster = cluster
        self.deadline = deadline
        self.wanted = wanted
        self.detect = detect
        self.redactor = redactor
        self.lock = threading.Lock()
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.settled: Literal["won", "abandoned"] | None = None

    def claim(self) -> bool:
        """A successful attempt asks to win: True for the first one, unless abandoned."""
        with self.lock:
            if self.settled is not None:
                return False
            self.settled = "won"
            return True

    def abandon(self) -> bool:
        """The waiting thread gives up: True unless an attempt has won already."""
        with self.lock:
            if self.settled is None:
                self.settled = "abandoned"
            return self.settled == "abandoned"

    def launch(
        self,
        index: int,
        node: str,
        connect: Callable[[float], Any],
        started: float | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        """Run ``connect(remaining)`` on a worker; ``started``: when the attempt began, if it
        began in the calling thread (its latency counts from there)."""
        name = f"clusterdb-connect-{self.cluster.name}-{node}"
        try:
            process.spawn(self._attempt, index, node, connect, started, name=name)
        except Exception as exc:  # "can't start new thread": count it, try the next node
            if cancel is not None:
                cancel()
            self.failed(index, node, exc)

    def _attempt(
        self, index: int, node: str, connect: Callable[[float], Any], started: float | None
    ) -> None:
        now = monotonic()
        try:
            conn = connect(self.deadline - now)
        except BaseException as exc:
            self.failed(index, node, exc)
            return
        self.connected(index, node, conn, now if started is None else started)

    def connected(
        self, index: int, node: str, conn: Any, started: float, here: bool = False
    ) -> None:
        """An attempt begun at ``started`` got ``conn``: check its role, settle, record."""
        adapter = self.cluster.adapter
        latency = monotonic() - started
        try:
            role = adapter.detect_role(conn) if self.detect(node) else None
        except Exception as exc:
            adapter.close_quietly(conn)
            self.failed(index, node, exc)
            return
        except BaseException as exc:
            adapter.close_quietly(conn)
            if here:  # interrupted in the calling thread: not the node's failure
                self.cluster.attempt_abandoned(node)
                raise
            self.failed(index, node, exc)
            return
        if not role_fits(self.wanted, role):
            adapter.close_quietly(conn)
            self.cluster.record_success(node, latency, role, discarded=True)
            line = wrong_role(role, self.wanted)
            self.results.put(Result(index, None, adapter.operational_error(line), line, False))
            self._primary_missed()
            return
        if role_is_fallback(self.wanted, role):
            self._offer_fallback(index, node, conn, latency, role)
            return
        won = self.claim()
        if not won:
            adapter.close_quietly(conn)
        # Recorded before the hand-over, so that stats read after connect() returns count it.
        self.cluster.record_success(node, latency, role, discarded=not won)
        if won:
            tag(conn, self.cluster.tags[node])
            self.results.put(Result(index, conn, None, "", False))

    def _offer_fallback(
        self, index: int, node: str, conn: Any, latency: float, role: Role | None
    ) -> None:
        """Hand a fallback to the waiting thread unclaimed (it decides whether to use it), or
        close it when the race is settled already."""
        # Under the race's lock (the cluster's lock is only ever taken inside it, never the
        # other way round): a race settled later finds the fallback in the queue, and the
        # outcome is recorded once, before the hand-over, with the right ``discarded``.
        tag(conn, self.cluster.tags[node])
        with self.lock:
            handed = self.settled is None
            self.cluster.record_success(node, latency, role, discarded=not handed)
            if handed:
                self.results.put(Result(index, conn, None, "", True))
        if not handed:
            self.cluster.adapter.close_quietly(conn)

    def failed(self, index: int, node: str, exc: BaseException) -> None:
        cluster = self.cluster
        redactor = fresh(self.redactor, cluster.redactor, cluster.credentials)
        line = redactor.one_line(exc)
        cluster.record_failure(node, exc, line)
        error = safe_error(redactor, exc, line, cluster.adapter.operational_error)
        self.results.put(Result(index, None, error, line, False))
        self._primary_missed()

    def _primary_missed(self) -> None:
        """A primary attempt failed or found another role: look for a promoted primary now,
        not at the next heartbeat (issue 13)."""
        if self.wanted == "primary":
            self.cluster.request_check()
