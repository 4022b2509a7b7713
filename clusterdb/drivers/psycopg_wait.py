"""``query_timeout`` for psycopg: every wait of a connection bounded, a silent server broken off.

psycopg runs every operation of a connection (execute, fetch, commit, copy, notifies) through
the connection's ``wait(gen, interval, timeout)``, which raises ``_WaitTimeout`` once
``timeout`` has passed. :func:`bound_waits` replaces ``wait`` on the connection object (its
class stays psycopg's, or the caller's ``connection_class``) by one that passes the bound:

- when the bound passes while a command is in progress (``transaction_status`` ACTIVE: a
  statement sent, its answer not complete), the socket is shut down and psycopg's wait goes
  on: libpq reads end-of-file and psycopg raises its own ``OperationalError`` ("server closed
  the connection unexpectedly", with a note naming ``query_timeout``), and the connection is
  broken, as after any lost connection. The error is reported (the node is marked down);
- with no command in progress (``notifies()`` waiting for a NOTIFY) the wait goes on unbounded:
  an idle connection is not a frozen node;
- a caller's own ``timeout`` (psycopg's ``notifies(timeout=)``, cancel) shorter than the bound
  is passed as it is.

Why not libpq's ``tcp_user_timeout`` or keepalives: a frozen server's kernel acknowledges
every segment and keepalive probe, so neither fires (measured: docs/design/query-timeout.md).
The bound counts the whole wait of one operation: a statement that takes longer than it to
produce its complete answer (a long report, a migration) fails the same way.
"""

from __future__ import annotations

import weakref
from typing import Any

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

from clusterdb.drivers.query_bound import Report, break_socket

__all__ = ["bound_waits", "bound_waits_async"]

_ACTIVE = TransactionStatus.ACTIVE
_INTERVAL = 0.1  # psycopg's own wake-up interval (Ctrl-C is seen between two wake-ups)


class _Bound:
    """State shared by the sync and async waits of one connection (held weakly: no cycle)."""

    __slots__ = ("_conn", "bound", "report")

    def __init__(self, conn: Any, bound: float, report: Report) -> None:
        self._conn = weakref.ref(conn)
        self.bound = bound
        self.report = report

    def conn(self) -> Any:
        return self._conn()

    def expired(self, conn: Any) -> bool:
        """After the bound passed: True (the socket is broken) when a command waits for its
        answer; False when the connection is idle (the wait may go on)."""
        if conn.pgconn.transaction_status != _ACTIVE:
            return False
        break_socket(conn.pgconn.socket)
        return True

    def failed(self, conn: Any, exc: psycopg.Error, expired: bool) -> None:
        if expired:
            exc.add_note(f"clusterdb: no answer within query_timeout={self.bound:g} s")
        self.report(conn, exc)


class _Wait(_Bound):
    __slots__ = ()

    def __call__(self, gen: Any, interval: float = _INTERVAL, timeout: float | None = None) -> Any:
        conn = self.conn()
        wait = type(conn).wait
        if timeout is not None and timeout <= self.bound:
            return wait(conn, gen, interval, timeout)
        expired = False
        try:
            try:
                return wait(conn, gen, interval, self.bound)
            except errors._WaitTimeout:
                expired = self.expired(conn)
                left = None if timeout is None else timeout - self.bound
                return wait(conn, gen, interval, left)
        except psycopg.Error as exc:
            self.failed(conn, exc, expired)
            raise


class _WaitAsync(_Bound):
    __slots__ = ()

    async def __call__(
        self, gen: Any, interval: float = _INTERVAL, timeout: float | None = None
    ) -> Any:
        conn = self.conn()
        wait = type(conn).wait
        if timeout is not None and timeout <= self.bound:
            return await wait(conn, gen, interval, timeout)
        expired = False
        try:
            try:
                return await wait(conn, gen, interval, self.bound)
            except errors._WaitTimeout:
                expired = self.expired(conn)
                left = None if timeout is None else timeout - self.bound
                return await wait(conn, gen, interval, left)
        except psycopg.Error as exc:
            self.failed(conn, exc, expired)
            raise


def bound_waits(conn: psycopg.Connection[Any], bound: float, report: Report) -> None:
    """Bound every wait of ``conn`` by ``bound`` seconds (see the module's docstring)."""
    conn.wait = _Wait(conn, bound, report)  # type: ignore[method-assign]


def bound_waits_async(conn: psycopg.AsyncConnection[Any], bound: float, report: Report) -> None:
    """:func:`bound_waits` for an ``AsyncConnection``."""
    conn.wait = _WaitAsync(conn, bound, report)  # type: ignore[method-assign]
