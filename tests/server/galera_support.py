"""Writer threads for the Galera server tests: each connects with role="primary", asks which
node it landed on, inserts one row there and commits, again and again, recording when each
connect() began, where it landed, and every error (connect or write) with its node."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from connect_support import whoami

import clusterdb
from clusterdb.testing import GaleraCluster


@dataclass(frozen=True)
class Write:
    began: float
    """monotonic() when connect() was called."""
    landed: float
    """monotonic() once the connection said which node it is on."""
    node: str
    ok: bool
    """The row was committed (False: the node failed the statement)."""


@dataclass
class Writers:
    """``threads`` threads writing through clusterdb cluster ``name`` until the block ends."""

    harness: GaleraCluster
    name: str
    threads: int = 4
    pause: float = 0.002
    table: str = field(default_factory=lambda: f"w_{uuid.uuid4().hex[:8]}")
    writes: list[Write] = field(default_factory=list)
    connect_failures: list[tuple[float, str]] = field(default_factory=list)
    write_errors: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Writers:
        self.harness.execute(
            self.harness.nodes[0],
            f"CREATE TABLE {self.table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "node VARCHAR(20), at DOUBLE)",
        )
        for i in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"test-writer-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a writer did not stop"

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                conn = clusterdb.connect(self.name, role="primary")
            except Exception as exc:
                with self._lock:
                    self.connect_failures.append((began, f"{type(exc).__name__}: {exc}"))
                time.sleep(self.pause)
                continue
            node, landed = "?", 0.0
            try:
                node = whoami(self.harness, conn)
                landed = time.monotonic()
                self._write(conn, node)
                ok = True
            except Exception as exc:
                ok = False
                with self._lock:
                    self.write_errors.append((began, node, f"{type(exc).__name__}: {exc}"))
            finally:
                with contextlib.suppress(Exception):
                    conn.close()
            if node != "?":
                with self._lock:
                    self.writes.append(Write(began, landed, node, ok))
            time.sleep(self.pause)

    def _write(self, conn: Any, node: str) -> None:
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {self.table} (node, at) VALUES (%s, %s)", (node, time.time()))
        conn.commit()

    def nodes_between(self, start: float, end: float = float("inf")) -> list[str]:
        """Where the connects begun in ``[start, end)`` landed, in order."""
        with self._lock:
            return [w.node for w in self.writes if start <= w.began < end]

    def landed_between(self, start: float, end: float = float("inf")) -> list[str]:
        """Where the connections that landed in ``[start, end)`` landed."""
        with self._lock:
            return [w.node for w in self.writes if start <= w.landed < end]

    def first_on(self, node: str, after: float) -> float | None:
        """When the first connection to land on ``node`` after ``after`` did (its write may
        have finished later: the list is in the order writes finished)."""
        with self._lock:
            landed = [w.landed for w in self.writes if w.landed > after and w.node == node]
        return min(landed, default=None)
