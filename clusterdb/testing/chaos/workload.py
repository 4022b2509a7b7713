"""The chaos workers: threads and asyncio tasks connecting with every role, asking the server
its role on the returned connection, reading, and writing ids through ``primary``.

Each operation is one :class:`~clusterdb.testing.chaos.invariants.Op`: ``clusterdb.connect``
(or ``connect_async``), then on that connection the server's own answer about its role
(PostgreSQL ``pg_is_in_recovery()``, MariaDB ``@@read_only``), then for ``primary`` an INSERT of
a unique id, acknowledged once its commit returned. A query error (a node killed under an open
connection) is recorded, not judged: the invariants are about what clusterdb hands out.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import clusterdb
from clusterdb.testing.chaos.invariants import Op, ServerRole, Wanted

__all__ = ["ROLES", "Workload"]

ROLES: tuple[Wanted, ...] = ("any", "primary", "replica", "prefer-replica")
_TASKS_END = 15.0  # seconds: longer than any connect's deadline (connect_timeout + grace)
_ROLE_SQL = {"psycopg": "SELECT pg_is_in_recovery()", "pymysql": "SELECT @@read_only"}


def _server_role(value: Any) -> ServerRole:
    return "replica" if value in (True, 1, "1", "ON") else "primary"


@dataclass
class Workload:
    """Workers on cluster ``name`` (driver ``driver``) writing into ``table``; ``pace`` seconds
    between one worker's operations. ``ops`` fills as they run (``list.append`` is atomic)."""

    name: str
    driver: str
    table: str
    clock: Callable[[], float]
    pace: float = 0.05
    ops: list[Op] = field(default_factory=list)
    leftover_tasks: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def _insert(self) -> str:
        return f"INSERT INTO {self.table} (id) VALUES (%s)"

    def start(self, threads_per_role: int, tasks_per_role: int) -> None:
        for role in ROLES:
            for i in range(threads_per_role):
                worker = f"thread-{role}-{i}"
                t = threading.Thread(target=self._thread, args=(worker, role), name=worker)
                self._threads.append(t)
                t.start()
        if tasks_per_role:
            t = threading.Thread(
                target=asyncio.run, args=(self._tasks(tasks_per_role),), name="chaos-loop"
            )
            self._threads.append(t)
            t.start()

    def stop(self, timeout: float) -> list[str]:
        """Stop the workers; the names of those still running after ``timeout`` seconds."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        return [t.name for t in self._threads if t.is_alive()]

    # -- threads --

    def _thread(self, worker: str, wanted: Wanted) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            self.ops.append(self._op(worker, wanted, seq))
            self._stop.wait(self.pace)

    def _op(self, worker: str, wanted: Wanted, seq: int) -> Op:
        draft = _Draft(worker, wanted, seq, self.clock)
        try:
            conn = clusterdb.connect(self.name, role=wanted)
        except Exception as exc:
            return draft.connect_failed(exc)
        draft.connected(conn)
        try:
            cur = conn.cursor()
            cur.execute(_ROLE_SQL[self.driver])
            if draft.said(cur.fetchone()):
                cur.execute(self._insert, [draft.key])
                conn.commit()
                draft.acked = draft.key
            else:
                conn.rollback()
        except Exception as exc:
            return draft.done(exc)
        finally:
            with contextlib.suppress(Exception):
                conn.close()
        return draft.done()

    # -- asyncio tasks --

    async def _tasks(self, per_role: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        watcher = loop.run_in_executor(None, self._stop.wait)
        watcher.add_done_callback(lambda _: stop.set())
        workers = [
            asyncio.create_task(self._task(f"task-{role}-{i}", role, stop))
            for role in ROLES
            for i in range(per_role)
        ]
        await asyncio.gather(*workers, watcher)
        # A losing attempt may still be running (it ends by its connect's deadline): wait for
        # it, and call a task still there after that left behind.
        current = asyncio.current_task()
        deadline = loop.time() + _TASKS_END
        while True:
            others = [t for t in asyncio.all_tasks() if t is not current]
            if not others or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        self.leftover_tasks = [t.get_name() for t in others]

    async def _task(self, worker: str, wanted: Wanted, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            self.ops.append(await self._op_async(worker, wanted, seq))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.pace)

    async def _op_async(self, worker: str, wanted: Wanted, seq: int) -> Op:
        draft = _Draft(worker, wanted, seq, self.clock)
        try:
            conn = await clusterdb.connect_async(self.name, role=wanted)
        except Exception as exc:
            return draft.connect_failed(exc)
        draft.connected(conn)
        try:
            if draft.said(await _fetch(conn, _ROLE_SQL[self.driver])):
                await _fetch(conn, self._insert, [draft.key])
                await conn.commit()
                draft.acked = draft.key
            else:
                await conn.rollback()
        except Exception as exc:
            return draft.done(exc)
        finally:
            with contextlib.suppress(Exception):
                await _close(conn)
        return draft.done()


@dataclass
class _Draft:
    """An operation's record as it goes (the same steps for threads and tasks)."""

    worker: str
    wanted: Wanted
    seq: int
    clock: Callable[[], float]
    start: float = 0.0
    end: float = 0.0
    node: str | None = None
    role: ServerRole | None = None
    checked: float | None = None
    acked: str | None = None

    def __post_init__(self) -> None:
        self.start = self.clock()

    @property
    def key(self) -> str:
        """The unique id this operation writes."""
        return f"{self.worker}-{self.seq}"

    def connect_failed(self, exc: Exception) -> Op:
        name, detail = type(exc).__name__, str(exc)[:400]
        return Op(self.worker, self.wanted, self.start, self.clock(), name, detail=detail)

    def connected(self, conn: Any) -> None:
        self.end = self.clock()
        ref = clusterdb.node_of(conn)
        self.node = ref.node if ref is not None else None

    def said(self, row: Any) -> bool:
        """Record the server's answer about its role; True when this operation writes."""
        self.checked = self.clock()
        self.role = _server_role(row[0])
        return self.wanted == "primary" and self.role == "primary"

    def done(self, exc: Exception | None = None) -> Op:
        return Op(
            self.worker,
            self.wanted,
            self.start,
            self.end,
            None,
            self.node,
            self.role,
            self.checked,
            None if exc is None else type(exc).__name__,
            self.acked,
            "" if exc is None else str(exc)[:400],
        )


async def _fetch(conn: Any, sql: str, params: list[Any] | None = None) -> Any:
    """Run ``sql`` on a psycopg AsyncConnection or an asyncmy connection; its first row."""
    if hasattr(conn, "pgconn"):
        cur = await conn.execute(sql, params)
        return await cur.fetchone() if cur.description is not None else None
    from asyncmy.cursors import Cursor  # a plain cursor whatever the registration's

    async with conn.cursor(Cursor) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone() if cur.description is not None else None


async def _close(conn: Any) -> None:
    if hasattr(conn, "pgconn"):
        await conn.close()
    else:
        await conn.ensure_closed()
