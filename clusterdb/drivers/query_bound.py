"""What ``query_timeout`` needs in every driver: errors of a connection's calls fed back to
clusterdb, and a socket broken under a driver that is waiting on it.

A node can freeze after a connection to it was made: a stopped server process (SIGSTOP, a
debugger, a stuck kernel call) whose kernel keeps acknowledging TCP, so neither keepalives nor
``TCP_USER_TIMEOUT`` fire, and a query waits for as long as the node stays frozen. Each
driver's own means ends the wait, or makes the driver end it: PyMySQL's ``read_timeout``;
psycopg's ``wait()`` timeout, after which the socket is shut down so that libpq fails the query
itself; for asyncmy, the connection closed under the waiting call. The error raised is the
driver's own ``OperationalError``, and :class:`Reporting` makes the connection's own methods
hand it to clusterdb (:func:`clusterdb.report_error`: a lost connection marks its node down)
before raising it.

The methods are replaced on the connection object itself (its class stays the driver's), by
callables that hold the connection weakly: no reference cycle keeps a dropped connection open.
"""

from __future__ import annotations

import contextlib
import os
import socket
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["Report", "Reporting", "break_socket", "report_calls"]

Report = Callable[[Any, BaseException], object]
"""``report(conn, exc)``: hand an error raised on ``conn`` to clusterdb."""


def break_socket(fd: int) -> None:
    """Shut socket ``fd`` down both ways (no close: the driver still owns the descriptor), so
    that the driver blocked on it reads end-of-file and fails with its own error."""
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


class Reporting:
    """A connection's method (``type(conn).name``) that reports the errors it raises. It holds
    the connection weakly: stored on the connection, it makes no reference cycle."""

    __slots__ = ("conn", "method", "report")

    def __init__(self, conn: Any, name: str, report: Report) -> None:
        self.conn = weakref.ref(conn)
        self.method = getattr(type(conn), name)
        self.report = report

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        conn = self.conn()
        try:
            return self.method(conn, *args, **kwargs)
        except Exception as exc:
            self.report(conn, exc)
            raise


def report_calls(conn: Any, names: tuple[str, ...], report: Report) -> None:
    """Make each method ``names`` of ``conn`` call ``report(conn, exc)`` on an error before
    raising it (a Python call more per call)."""
    for name in names:
        setattr(conn, name, Reporting(conn, name, report))
