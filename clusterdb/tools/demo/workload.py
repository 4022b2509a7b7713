"""The demo's workload: threads connecting at a steady pace, and the tally of where they landed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import clusterdb
from clusterdb.core.description import WantedRole
from clusterdb.tools import report

__all__ = ["CLUSTER", "RATE", "ROLES", "STALL_S", "Tally", "Workload"]

CLUSTER = "demo"
ROLES: tuple[WantedRole, ...] = ("primary", "prefer-replica", "any")
RATE = 10.0
"""Connects per second, all workload threads together."""
STALL_S = 1.0
"""A call (connect and query) that takes this long or longer is a stall, whatever its end: a
worker stuck on a frozen node is not "succeeding", even if its call succeeds once it wakes."""


@dataclass
class Tally:
    """Outcomes of the workload since the current step began (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reached: dict[str, Counter[str]] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)
    first_error: dict[str, str] = field(default_factory=dict)
    slowest: dict[str, float] = field(default_factory=dict)
    """Longest connect() of the step per role, seconds (successful or not)."""
    stalled: Counter[str] = field(default_factory=Counter)
    """Calls of the step (connect and query) per role that took :data:`STALL_S` or more."""
    longest: dict[str, float] = field(default_factory=dict)
    """Longest call of the step per role (connect and query), seconds."""
    total_ok: Counter[str] = field(default_factory=Counter)
    total_failed: Counter[str] = field(default_factory=Counter)
    total_stalled: Counter[str] = field(default_factory=Counter)
    total_longest: dict[str, float] = field(default_factory=dict)

    def _took(self, role: str, connect_s: float, call_s: float) -> None:
        """Hold the lock."""
        self.slowest[role] = max(self.slowest.get(role, 0.0), connect_s)
        self.longest[role] = max(self.longest.get(role, 0.0), call_s)
        self.total_longest[role] = max(self.total_longest.get(role, 0.0), call_s)
        if call_s >= STALL_S:
            self.stalled[role] += 1
            self.total_stalled[role] += 1

    def ok(self, role: str, node: str, connect_s: float, call_s: float) -> None:
        with self.lock:
            self.reached.setdefault(role, Counter())[node] += 1
            self.total_ok[role] += 1
            self._took(role, connect_s, call_s)

    def fail(self, role: str, error: str, connect_s: float, call_s: float) -> None:
        with self.lock:
            self.failed[role] += 1
            self.total_failed[role] += 1
            self.first_error.setdefault(role, error)
            self._took(role, connect_s, call_s)

    def new_step(self) -> None:
        with self.lock:
            self.reached.clear()
            self.failed.clear()
            self.first_error.clear()
            self.slowest.clear()
            self.stalled.clear()
            self.longest.clear()

    def stalls_line(self) -> str:
        """The step's stalls per role and its longest call: ``prefer-replica 1 (longest
        2.00 s)``; ``none`` when no call took :data:`STALL_S`."""
        with self.lock:
            parts = [
                f"{role} {self.stalled[role]} (longest {self.longest[role]:.2f} s)"
                for role in ROLES
                if self.stalled[role]
            ]
            return ", ".join(parts) or "none"

    def first_errors(self) -> dict[str, str]:
        """The first failure of the step per role."""
        with self.lock:
            return dict(self.first_error)

    def slowest_line(self) -> str:
        with self.lock:
            return ", ".join(
                f"{role} {self.slowest[role] * 1000:.0f} ms"
                for role in ROLES
                if role in self.slowest
            )

    def line(self) -> str:
        with self.lock:
            parts = []
            for role in ROLES:
                nodes = self.reached.get(role, Counter())
                where = " ".join(f"{n}:{c}" for n, c in sorted(nodes.items())) or "-"
                failed = f" FAILED:{self.failed[role]}" if self.failed[role] else ""
                parts.append(f"{role}: {where}{failed}")
            return " | ".join(parts)


class Workload:
    """One thread per role in :data:`ROLES`; each connect asks the server who it is.

    A context manager: the threads run inside the ``with`` block.
    """

    def __init__(self, whoami: str, tally: Tally, timeout: float) -> None:
        self._whoami = whoami
        self._tally = tally
        self._timeout = timeout
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(role,), name=f"demo-{role}", daemon=True)
            for role in ROLES
        ]

    def _once(self, role: WantedRole) -> None:
        started = time.monotonic()
        try:
            conn: Any = clusterdb.connect(CLUSTER, role=role, connect_timeout=self._timeout)
        except Exception as exc:
            took = time.monotonic() - started
            self._tally.fail(role, _error_line("", exc), took, took)
            return
        took = time.monotonic() - started
        try:
            cur = conn.cursor()
            cur.execute(self._whoami)
            row = cur.fetchone()
            call = time.monotonic() - started
            self._tally.ok(role, str(row[0]) if row else "?", took, call)
        except Exception as exc:  # the node died or froze between connect and query
            call = time.monotonic() - started
            self._tally.fail(role, _error_line("query: ", exc), took, call)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _loop(self, role: WantedRole) -> None:
        interval = len(ROLES) / RATE
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._once(role)
            next_at = max(next_at + interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Workload:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self._timeout + 2.0)


def _error_line(prefix: str, exc: BaseException) -> str:
    return f"{prefix}{type(exc).__name__}: {report.collapse_whitespace(str(exc))}"
