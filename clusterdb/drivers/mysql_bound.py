"""``query_timeout`` for PyMySQL (its own ``read_timeout``) and asyncmy (a watch per connection).

PyMySQL bounds each read from the server by ``read_timeout`` and each write by
``write_timeout`` (socket timeouts) and, when one passes, closes the connection and raises its
own ``OperationalError(2013, "Lost connection to MySQL server during query (timed out)")``. The
bound is on each silence of the server, not on a whole statement: a query whose rows keep
coming for longer than the bound is not cut, one whose server says nothing for that long is. A
``read_timeout`` (``write_timeout``) the caller gave PyMySQL wins over ``query_timeout``.

asyncmy's own ``read_timeout`` wraps every wait for data in ``asyncio.wait_for``, a task each
(measured: 1.3-1.9x the client CPU of a local ``SELECT 1``; one ``asyncio.timeout`` per call
cost as much). So each asyncmy call is bounded as a whole by a :class:`_Watch` instead: when a
call has waited ``query_timeout``, the connection is closed under it, asyncmy's waiting read
sees the connection lost and raises its own ``OperationalError(2013, "Lost connection to
MySQL server during query")``, with a note naming ``query_timeout``. A ``read_timeout`` given
to asyncmy still applies.

The connection's statement and transaction methods report their errors to clusterdb
(:class:`~clusterdb.drivers.query_bound.Reporting`), so a timed-out query marks its node down.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from clusterdb.drivers.query_bound import Report, Reporting, report_calls

__all__ = ["bound_asyncmy", "bound_pymysql"]

# What a cursor's execute() (query), a stored procedure's further results, and the
# transaction and session calls go through: the calls that wait for the server.
_CALLS = ("query", "next_result", "commit", "rollback", "begin", "ping", "select_db")


def bound_pymysql(_adapter: object, conn: Any, bound: float, report: Report) -> bool:
    """PyMySQL: ``read_timeout`` and ``write_timeout`` of ``conn`` (applied by PyMySQL at its
    next read or write), unless the caller set them; errors reported."""
    if conn._read_timeout is None:
        conn._read_timeout = bound
    if conn._write_timeout is None:
        conn._write_timeout = bound
    report_calls(conn, _CALLS, report)
    return True


class _Watch:
    """One asyncmy connection's calls, watched by at most one loop timer at a time: a call
    marks itself started; the timer, due a bound after the oldest call it knows of, closes the
    connection when that call is still waiting, and otherwise is set again for the call that
    runs now (if any). Per call: two attribute writes and a clock read, and a timer only when
    none is set (asyncmy's own ``read_timeout`` costs a task per wait for data)."""

    __slots__ = ("bound", "conn", "expired", "handle", "started")

    def __init__(self, conn: Any, bound: float) -> None:
        self.conn = weakref.ref(conn)
        self.bound = bound
        self.started: float | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.expired = False

    def enter(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = now = loop.time()
        if self.handle is None:
            self.handle = loop.call_at(now + self.bound, self.check, loop)

    def check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.handle = None
        started, conn = self.started, self.conn()
        if started is None or conn is None:
            return
        if loop.time() - started < self.bound:
            self.handle = loop.call_at(started + self.bound, self.check, loop)
            return
        self.expired = True
        conn.close()  # asyncmy's waiting read sees the connection lost and raises 2013


class _Watched(Reporting):
    """An asyncmy coroutine method under the connection's :class:`_Watch`, errors reported."""

    __slots__ = ("watch",)

    def __init__(self, conn: Any, name: str, report: Report, watch: _Watch) -> None:
        super().__init__(conn, name, report)
        self.watch = watch

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        conn: Any = self.conn()
        watch = self.watch
        watch.enter()
        try:
            return await self.method(conn, *args, **kwargs)
        except Exception as exc:
            if watch.expired:
                exc.add_note(f"clusterdb: no answer within query_timeout={watch.bound:g} s")
            self.report(conn, exc)
            raise
        finally:
            watch.started = None


def bound_asyncmy(_adapter: object, conn: Any, bound: float, report: Report) -> bool:
    """asyncmy: each call of ``conn`` that waits for the server bounded as a whole by a
    :class:`_Watch` (see the module's docstring); errors reported."""
    watch = _Watch(conn, bound)
    for name in _CALLS:
        setattr(conn, name, _Watched(conn, name, report, watch))
    return True
