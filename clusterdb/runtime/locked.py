"""A cluster's critical section: ``with section as s: s.apply(record.on_...())``.

Entering takes the lock and does the queued bookkeeping first, so no reader or change ever
sees a connect half-counted; :meth:`Locked.apply` ends the kept rankings' epoch when a
transition says so; leaving releases the lock, then logs the transitions' events. Those
invariants hold by construction, not by a call placed in every method.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from clusterdb.core.events import Event
from clusterdb.core.node_state import Transition
from clusterdb.core.ranking_cache import RankingCache
from clusterdb.runtime.log import log_events

__all__ = ["Locked"]


class Locked:
    """``lock``, held with ``prepare()`` done (the cluster's outbox folded), for cluster
    ``name`` whose kept rankings are ``rankings``. One per lock: only its holder uses it."""

    __slots__ = ("_events", "_lock", "_name", "_prepare", "_rankings")

    def __init__(
        self,
        name: str,
        lock: threading.Lock,
        prepare: Callable[[], None],
        rankings: RankingCache,
    ) -> None:
        self._name = name
        self._lock = lock
        self._prepare = prepare
        self._rankings = rankings
        self._events: tuple[Event, ...] = ()

    def __enter__(self) -> Locked:
        self._lock.acquire()
        prepare = self._prepare  # a slot read and a call: cheaper than a method lookup
        try:
            prepare()
        except BaseException:
            self._lock.release()
            raise
        return self

    def apply(self, transition: Transition) -> tuple[Event, ...]:
        """End the rankings' epoch when ``transition`` says so; returns its events."""
        events, rerank = transition
        if rerank:
            self._rankings.invalidate()
        if events:
            self._events += events
        return events

    def __exit__(self, *exc_info: object) -> None:
        events, self._events = self._events, ()
        self._lock.release()
        if events:
            log_events(self._name, events)
