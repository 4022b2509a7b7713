"""What clusterdb needs to know about one DB-API driver, behind one small interface.

An adapter turns a node of the config into the driver's connect arguments (once, at register
time), opens a connection within a deadline, reads the node's role cheaply and closes a
connection without raising. It never wraps the connection: the caller gets exactly what the
driver's own ``connect()`` returns.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from clusterdb.core.causal import Kind, Position
from clusterdb.core.description import Role
from clusterdb.core.galera import WsrepStatus

if TYPE_CHECKING:
    from clusterdb.config import NodeEntry

__all__ = [
    "ConnectArgs",
    "DriverAdapter",
    "ErrorKind",
    "Pending",
    "ProbeResult",
    "needs_no_lookup",
    "nothing",
]

ErrorKind = Literal["read_only", "lost"]
"""An error on an established connection that says something about its node: ``read_only``
(a write refused because the server is not primary), ``lost`` (the connection is gone)."""


@dataclass(frozen=True, slots=True)
class ConnectArgs:
    """One node's driver arguments, built once at register time."""

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    pipeline_handshake: bool = True
    """The cluster's option of that name (used by PyMySQL)."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a monitor probe read from a node."""

    role: Role | None
    lag: float | None
    """Replication lag in seconds (replicas), None when the server cannot tell."""
    stopped: bool = False
    """A replica that has stopped applying changes (MariaDB's SQL thread not running, after a
    replication error or a STOP SLAVE): its lag grows without bound while the server cannot
    say by how much."""
    wsrep: WsrepStatus | None = None
    """A Galera node's wsrep status; None when the server reports no Galera provider."""
    applied: Position | None = None
    """A replica's applied log position (PostgreSQL replay LSN, MariaDB GTID position), for
    read-your-writes tokens; None on a primary or when not read."""


@dataclass(frozen=True, slots=True)
class Pending:
    """An attempt begun by :meth:`DriverAdapter.start` whose server has not spoken yet."""

    finish: Callable[[float], Any]
    """``finish(timeout)``: complete the attempt (in a worker thread) within ``timeout`` s."""
    cancel: Callable[[], None]
    """Drop the attempt unfinished (its socket is closed)."""


def nothing() -> None:
    """Does nothing: the default ``idle`` of :meth:`DriverAdapter.start`."""


@functools.lru_cache(maxsize=1024)
def needs_no_lookup(host: str) -> bool:
    """True for an IP address or a unix-socket path: connecting to it asks no resolver.

    An attempt begins in the caller's thread only then: a hostname lookup blocks in
    getaddrinfo, which cannot be paused or hedged, and a slow resolver would hold connect()
    there; a worker thread runs such attempts while the racer hedges. Cached: this is asked
    on every connect.
    """
    if host.startswith(("/", "@")):
        return True
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class DriverAdapter(ABC):
    """One DB-API driver as clusterdb sees it."""

    name: str
    """Short driver name shown in stats (``psycopg``, ``pymysql``, ``sqlite3``...)."""
    module: ModuleType
    operational_error: type[Exception]
    role_is_free: bool = False
    """True when :meth:`detect_role` needs no round trip, so it runs on every connect."""
    causal_kind: Kind | None = None
    """The kind of read-your-writes token the driver's servers give (None: no tokens)."""

    @abstractmethod
    def connect_args(self, node: NodeEntry, kwargs: Mapping[str, Any]) -> ConnectArgs:
        """Merge the cluster-wide driver ``kwargs`` with ``node`` (the node wins).

        Raises ``ValueError`` (or the driver's own error) for arguments the driver refuses.
        """

    @abstractmethod
    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        """Open a connection to ``target`` (``overrides`` win) that gives up after ``timeout`` s.

        ``timeout`` is what is left of connect()'s overall deadline; drivers round it to what
        they support, so an abandoned attempt ends on its own soon after the deadline.
        """

    starts_inline: bool = False
    """True when :meth:`start` can run an attempt in the caller's thread and pause it."""

    def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        """Begin an attempt in the caller's thread: the connection, when the server answered
        within ``patience`` s (what counts as an answer is the driver's: the whole handshake
        for psycopg, the greeting for PyMySQL, whose handshake then runs here too, bounded by
        ``timeout``), or a :class:`Pending` attempt for a worker thread to finish.

        ``idle``: work the caller would have done anyway (the cluster's queued bookkeeping),
        to call at most once once a request is on its way to the server, so that it overlaps
        with the server's work; skipping it is allowed.

        The default begins nothing: a worker runs the whole of :meth:`connect`.
        """
        return Pending(lambda remaining: self.connect(target, overrides, remaining), nothing)

    def detect_role(self, conn: Any) -> Role | None:
        """The node's role as seen on ``conn``, or None when the driver cannot tell.

        Leaves no transaction open.
        """
        return None

    def tracked_position(self, conn: Any) -> str | None:
        """The log position of ``conn``'s last write as the server reported it unasked (PyMySQL
        on MariaDB: the tracked ``last_gtid``), or None: ``causal_token`` then asks."""
        return None

    def fetch_row(self, conn: Any, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql`` as a tuple (whatever the caller's row factory or cursor
        class), leaving no transaction open that was not open before."""
        cursor = conn.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else tuple(row)

    def probe(self, conn: Any) -> ProbeResult:
        """One round trip on a connection opened for probing: the node's role and lag.

        The connection is closed by the caller afterwards, so a transaction may be left open.
        """
        cursor = conn.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        return ProbeResult(self.detect_role(conn), None)

    def classify_error(self, exc: BaseException, conn: Any = None) -> ErrorKind | None:
        """What ``exc``, raised on the established connection ``conn``, says about its node;
        None for an error of the statement or the session (the default: nothing known)."""
        return None

    def bound_queries(
        self, conn: Any, bound: float, report: Callable[[Any, BaseException], object]
    ) -> bool:
        """Make every call on ``conn`` that waits for the server fail within about ``bound``
        seconds of waiting, with the driver's own ``OperationalError``, and hand such errors
        (and the other errors of those calls) to ``report(conn, exc)`` before raising them.
        False when the driver has no way to (the default: a generic DB-API driver's calls
        are not bounded)."""
        return False

    def socket_fd(self, conn: Any) -> int | None:
        """The connection's socket descriptor, or None when the driver does not show it."""
        fileno = getattr(conn, "fileno", None)
        if fileno is None:
            return None
        try:
            fd = fileno()
        except Exception:
            return None
        return fd if isinstance(fd, int) and fd >= 0 else None

    def abort(self, conn: Any) -> None:
        """Break a connection that another thread is blocked on (a node hung mid-query).

        Shutting the socket down wakes the blocked read with an error in any driver; closing
        the connection instead would wait for the lock the blocked thread holds.
        """
        fd = self.socket_fd(conn)
        if fd is None:
            return
        with contextlib.suppress(OSError):
            dup = os.dup(fd)
            with socket.socket(fileno=dup) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    def close_quietly(self, conn: Any) -> None:
        """Close ``conn``, ignoring every error (some drivers raise on a second close)."""
        with contextlib.suppress(Exception):
            conn.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
