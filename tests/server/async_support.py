"""Helpers of the asyncio server tests: a loop-stall ticker, open sockets, asking a node, writers
on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pools_support import Outcome, Workload

from clusterdb.testing.cluster import Cluster


class Ticker:
    """A task that wakes every millisecond: the longest gap between two wake-ups is how long
    the loop was blocked at worst (plus that millisecond)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def sockets_towards(port: int) -> int:
    """TCP sockets of this process connected (or connecting) to ``port`` on any address."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[9] in mine:
                    count += 1
    return count


async def whoami(harness: Cluster, conn: Any) -> str:
    """The name of the node an asyncio connection (psycopg or asyncmy) is connected to."""
    if hasattr(conn, "pgconn"):
        cur = await conn.execute(harness.WHOAMI_SQL)
        row = await cur.fetchone()
    else:
        from asyncmy.cursors import Cursor  # a plain cursor whatever the registration's

        async with conn.cursor(Cursor) as cur:
            await cur.execute(harness.WHOAMI_SQL)
            row = await cur.fetchone()
    assert row is not None
    return str(row[0])


async def close(conn: Any) -> None:
    """Close an asyncio connection of either driver."""
    if hasattr(conn, "pgconn"):
        await conn.close()
    else:
        await conn.ensure_closed()


class AsyncWorkload(Workload):
    """:class:`Workload` with its writers as ``threads`` tasks of one event loop, run by one
    thread: ``await op(task, seq)`` returns the node the operation ran on. ``setup`` runs on
    that loop first and returns the ``op``; ``teardown`` (a coroutine function) after the tasks
    stop (an asyncio engine lives on one loop)."""

    def __init__(
        self,
        setup: Callable[[], Awaitable[Callable[[int, int], Awaitable[str]]]],
        threads: int,
        teardown: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(op=lambda index, key: "", threads=threads)
        self._setup = setup
        self._teardown = teardown

    def __enter__(self) -> AsyncWorkload:
        thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.running.append(thread)
        thread.start()
        return self

    async def _main(self) -> None:
        op = await self._setup()
        try:
            await asyncio.gather(*(self._writer(op, index) for index in range(self.threads)))
        finally:
            await self._teardown()

    async def _writer(self, op: Callable[[int, int], Awaitable[str]], index: int) -> None:
        seq = 0
        while not self.stopping.is_set():
            seq += 1
            key = index * 1_000_000 + seq
            try:
                node = await op(index, key)
            except Exception as exc:
                with self.lock:
                    self.outcomes.append(Outcome(time.monotonic(), False, None, repr(exc)[:300]))
                await asyncio.sleep(self.pause_after_error)
                continue
            with self.lock:
                self.outcomes.append(Outcome(time.monotonic(), True, node))
                self.acked.append(key)
            await asyncio.sleep(self.pause)
