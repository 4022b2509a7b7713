"""No connect step inside libpq while the process forks: :data:`LIBPQ`.

psycopg runs each step of a connect (``PQconnectPoll``) with the GIL released, and a SCRAM
step calls OpenSSL's random generator, which takes a process-wide lock. A fork that lands
while another thread holds that lock leaves the child's copy of it locked for good: the
child's first SCRAM connect then hangs in ``RAND_status`` (seen with gdb: 1 run in about 20
of ``tests/server/test_fork.py``'s fork-while-attempts-are-in-flight case under load).

Each step clusterdb drives runs inside the gate (``with LIBPQ:``). Before a fork the forking
thread closes the gate: no step starts, and the fork waits for the steps under way (each a
few milliseconds at most: a step never waits for the network) for up to :data:`WAIT`
seconds. After the fork the gate opens again in the parent and starts afresh in the child.
"""

from __future__ import annotations

import threading

__all__ = ["LIBPQ", "WAIT", "ForkGate"]

WAIT = 1.0
"""Seconds a fork waits at most for the steps under way (a step takes milliseconds)."""


class ForkGate:
    """Steps counted in and out; :meth:`close` before a fork, :meth:`reopen` after it in the
    parent, :meth:`reset` in the child. Entering costs one lock round when the gate is open."""

    __slots__ = ("_busy", "_changed", "_closed", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._busy = 0
        self._closed = False

    def __enter__(self) -> None:
        with self._lock:
            while self._closed:
                self._changed.wait()
            self._busy += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._busy -= 1
            if self._closed and not self._busy:
                self._changed.notify_all()

    def close(self, wait: float = WAIT) -> None:
        """Before a fork: no step starts; wait up to ``wait`` s for those under way."""
        with self._lock:
            self._closed = True
            self._changed.wait_for(lambda: not self._busy, wait)

    def reopen(self) -> None:
        """After a fork, in the parent: steps may start again."""
        with self._lock:
            self._closed = False
            self._changed.notify_all()

    def reset(self) -> None:
        """After a fork, in the child: the parent's steps are not the child's."""
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._busy = 0
        self._closed = False

    @property
    def busy(self) -> int:
        """Steps under way (for tests)."""
        return self._busy


LIBPQ = ForkGate()
"""The gate of every libpq connect step clusterdb drives (psycopg, sync and asyncio); the
process's one fork hook (:mod:`clusterdb.runtime.process`) closes and reopens it."""
