"""Helpers for the pooled-connection server tests (issue 13): threads that keep writing or
reading through a pool and record what each operation did, and a table of ids to write."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from clusterdb.testing.cluster import Cluster


@dataclass(frozen=True)
class Outcome:
    at: float
    """monotonic() when the operation ended."""
    ok: bool
    node: str | None
    """Where it ran (ok), else None."""
    error: str = ""


@dataclass
class Workload:
    """``threads`` threads each calling ``op(thread, seq)`` (which returns the node it ran on)
    until stopped; a failed op is retried after ``pause_after_error`` seconds."""

    op: Callable[[int, int], str]
    threads: int
    pause: float = 0.002
    pause_after_error: float = 0.02
    outcomes: list[Outcome] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    running: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Workload:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self.running.append(thread)
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.running:
            thread.join(30)
            assert not thread.is_alive(), "a workload thread did not stop"

    def _run(self, index: int) -> None:
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            key = index * 1_000_000 + seq
            try:
                node = self.op(index, key)
            except Exception as exc:
                with self.lock:
                    self.outcomes.append(Outcome(time.monotonic(), False, None, repr(exc)[:300]))
                time.sleep(self.pause_after_error)
                continue
            with self.lock:
                self.outcomes.append(Outcome(time.monotonic(), True, node))
                self.acked.append(key)
            time.sleep(self.pause)

    def failures_after(self, t: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if not o.ok and o.at > t]

    def successes_between(self, start: float, end: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.ok and start < o.at <= end]

    def wait_successes(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.successes_between(0, time.monotonic())) < count:
            last = self.outcomes[-3:]
            assert time.monotonic() < deadline, f"fewer than {count} successes: {last}"
            time.sleep(0.01)


@contextlib.contextmanager
def ids_table(harness: Cluster) -> Iterator[str]:
    """A table ``(id INT PRIMARY KEY)`` on the primary, dropped afterwards (best effort)."""
    table = f"pool_{uuid.uuid4().hex[:8]}"
    harness.execute(harness.primary, f"CREATE TABLE {table} (id BIGINT PRIMARY KEY)")
    if harness.driver == "psycopg":  # the application user writes to it
        harness.execute(harness.primary, f"GRANT ALL ON {table} TO {harness.user}")
    try:
        yield table
    finally:
        with contextlib.suppress(Exception):
            harness.execute(harness.primary, f"DROP TABLE {table}")


def missing_ids(harness: Cluster, table: str, acked: list[int]) -> set[int]:
    """Acknowledged ids the current primary does not have."""
    rows = harness.execute(harness.primary, f"SELECT id FROM {table}")
    return set(acked) - {int(r[0]) for r in rows}


def first_success_on(workload: Workload, node: str, after: float) -> float | None:
    """Seconds from ``after`` to the first operation that ran on ``node``."""
    with workload.lock:
        times = [o.at for o in workload.outcomes if o.ok and o.node == node and o.at > after]
    return min(times) - after if times else None


def whoami_of(harness: Cluster, cursor: Any) -> str:
    cursor.execute(harness.WHOAMI_SQL)
    row = cursor.fetchone()
    assert row is not None
    return str(row[0])


def kill_and_restart(node: Any, down: float = 1.5, after: float = 12.0) -> tuple[float, float]:
    """Kill ``node`` (a harness node), start it again ``down`` s later, wait ``after`` s:
    monotonic() at the kill and at the restart."""
    killed = time.monotonic()
    node.kill()
    time.sleep(down)
    node.start()
    restarted = time.monotonic()
    time.sleep(after)
    return killed, restarted


def share_on(workload: Workload, node: str, start: float, end: float) -> tuple[float, int]:
    """The share of the operations that succeeded between ``start`` and ``end`` that ran on
    ``node``, and how many succeeded."""
    done = workload.successes_between(start, end)
    return sum(1 for o in done if o.node == node) / max(1, len(done)), len(done)
