"""What a chaos run may leave behind, measured: threads, sockets, server sessions, memory.

* **Threads**: alive threads not there before the run, other than clusterdb's idle workers
  (the pool keeps up to ``MAX_IDLE``), its monitor and the harness's proxy loop.
* **Sockets**: this process's socket descriptors (``/proc/self/fd``) beyond the count before
  the run (the harness's proxies are in this process: their sockets count too, so a
  connection left open anywhere shows).
* **Server sessions**: the application user's sessions on every node (``pg_stat_activity`` /
  ``information_schema.processlist``), waited for up to ``timeout`` seconds since a closed
  connection's server process ends asynchronously.
* **Memory**: Python allocations (``tracemalloc``, the run's own records excepted) and the
  resident set (``/proc``), after warm-up and at the end.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc
from dataclasses import dataclass

from clusterdb.testing.cluster import Cluster

__all__ = ["Baseline", "Memory", "leftover_sessions", "new_threads", "rss_bytes", "sockets"]

_OURS = ("clusterdb-worker", "clusterdb-monitor", "clusterdb-testing-proxy")


def sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            continue
    return count


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class Baseline:
    threads: frozenset[int]
    sockets: int

    @classmethod
    def take(cls) -> Baseline:
        return cls(frozenset(t.ident or 0 for t in threading.enumerate()), sockets())


def new_threads(baseline: Baseline, timeout: float = 10.0) -> list[str]:
    """Names of threads started since ``baseline`` and still alive after up to ``timeout``
    seconds, clusterdb's idle workers, monitor and the proxy loop excepted."""
    deadline = time.monotonic() + timeout
    while True:
        left = [
            t.name
            for t in threading.enumerate()
            if t.ident not in baseline.threads and not t.name.startswith(_OURS)
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def leftover_sessions(harness: Cluster, timeout: float = 10.0) -> dict[str, int]:
    """The application user's sessions still open on each running node (nodes with none
    omitted), after waiting up to ``timeout`` seconds for them to end."""
    if harness.driver == "psycopg":
        sql = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
    else:
        sql = "SELECT count(*) FROM information_schema.processlist WHERE user = %s"
    deadline = time.monotonic() + timeout
    while True:
        counts = {
            n.name: int(harness.execute(n, sql, [harness.user])[0][0])
            for n in harness.nodes
            if n.running and not n.hung
        }
        left = {name: c for name, c in counts.items() if c}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _traced() -> int:
    """Bytes allocated by Python and still alive, the run's own records excepted (the
    workers' list of operations grows by design)."""
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, "*/clusterdb/testing/chaos/*")]
    )
    return sum(stat.size for stat in snapshot.statistics("filename"))


@dataclass
class Memory:
    """tracemalloc and RSS samples: ``mark()`` after warm-up, ``end()`` at the end."""

    started_here: bool = False
    traced_mark: int = 0
    traced_end: int = 0
    rss_mark: int = 0
    rss_end: int = 0

    def start(self) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(1)
            self.started_here = True

    def mark(self) -> None:
        gc.collect()
        self.traced_mark, self.rss_mark = _traced(), rss_bytes()

    def end(self) -> None:
        gc.collect()
        self.traced_end, self.rss_end = _traced(), rss_bytes()
        if self.started_here:
            tracemalloc.stop()

    @property
    def traced_growth(self) -> int:
        return self.traced_end - self.traced_mark

    @property
    def rss_growth(self) -> int:
        return self.rss_end - self.rss_mark
