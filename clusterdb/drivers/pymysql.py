"""PyMySQL: nodes become keyword arguments; the handshake is bounded by a temporary read timeout.

PyMySQL's ``connect_timeout`` covers only the TCP connect: a server that accepts and never
answers would block the handshake forever. Each attempt therefore also sets ``read_timeout``
and ``write_timeout`` to what is left of the deadline, and puts the caller's values back on the
connection once it is open (PyMySQL applies them lazily, on the next read or write).

PyMySQL 1.2 builds an SSL context on every connect unless ``ssl_disabled=True`` (its
"preferred" mode); clusterdb leaves the caller's SSL settings exactly as given, and makes that
preferred context once per process (:mod:`clusterdb.drivers.pymysql_tls`).

Once a server is known to authenticate in one step, PyMySQL's ``SET NAMES`` (and its
``SET AUTOCOMMIT`` when needed) goes out in the same write as the handshake response
(:mod:`clusterdb.drivers.pymysql_handshake`).
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
import select
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pymysql
import pymysql.cursors
from pymysql.constants import CR, ER

from clusterdb.core.description import Role
from clusterdb.core.dsn import parse_dsn
from clusterdb.drivers import mysql_bound, pymysql_errors, pymysql_handshake, pymysql_rows
from clusterdb.drivers.base import (
    ConnectArgs,
    DriverAdapter,
    ErrorKind,
    Pending,
    ProbeResult,
    needs_no_lookup,
    nothing,
)
from clusterdb.drivers.pymysql_gtid import TrackingConnection, tracked_gtid
from clusterdb.drivers.pymysql_rows import IN_TRANSACTION
from clusterdb.drivers.pymysql_wsrep import wsrep_status
from clusterdb.errors import ConfigError

if TYPE_CHECKING:
    from clusterdb.config import NodeEntry

__all__ = ["IN_TRANSACTION", "ROLE_SQL", "PyMySQLAdapter", "role_of"]

_ACCEPTED = frozenset(inspect.signature(pymysql.connections.Connection.__init__).parameters) - {
    "self"
}

_ALIASES = {"dbname": "database"}


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


# DSN strings hold text: give PyMySQL the types it checks for (it rejects port="3306").
_CONVERT: dict[str, Callable[[str], Any]] = {
    "port": int,
    "client_flag": int,
    "max_allowed_packet": int,
    "connect_timeout": float,
    "read_timeout": float,
    "write_timeout": float,
    "autocommit": _flag,
    "local_infile": _flag,
    "ssl_disabled": _flag,
    "ssl_verify_cert": _flag,
    "ssl_verify_identity": _flag,
    "use_unicode": _flag,
    "binary_prefix": _flag,
}

ROLE_SQL = "SELECT @@read_only"
"""The role query of a MySQL/MariaDB connection (see :func:`role_of`)."""


def role_of(row: Sequence[Any] | None) -> Role | None:
    """The role a row of :data:`ROLE_SQL` tells: read-only servers are replicas."""
    if row is None:
        return None
    return "replica" if int(row[0]) else "primary"


log = logging.getLogger("clusterdb")


def _bounded(merged: Mapping[str, Any], timeout: float) -> tuple[dict[str, Any], Any, Any]:
    """``merged`` (the node's keyword arguments and the caller's overrides) with every timeout
    bounded by ``timeout``, and the caller's own read and write timeouts, to put back once the
    connection is open."""
    kwargs = dict(merged)
    read_timeout = kwargs.get("read_timeout")
    write_timeout = kwargs.get("write_timeout")
    budget = max(timeout, 0.001)  # PyMySQL refuses 0
    kwargs["connect_timeout"] = budget
    kwargs["read_timeout"] = budget if read_timeout is None else min(budget, read_timeout)
    kwargs["write_timeout"] = budget if write_timeout is None else min(budget, write_timeout)
    return kwargs, read_timeout, write_timeout


def _unconnected(merged: Mapping[str, Any], timeout: float) -> tuple[Any, Any, Any]:
    """A PyMySQL connection not connected yet, its timeouts bounded by ``timeout``, and the
    caller's own read and write timeouts."""
    kwargs, read_timeout, write_timeout = _bounded(merged, timeout)
    return TrackingConnection(defer_connect=True, **kwargs), read_timeout, write_timeout


def _handshake(
    conn: Any, sock: socket.socket, read_timeout: Any, write_timeout: Any, pipeline: bool = True
) -> Any:
    """PyMySQL's own handshake on a socket whose server has spoken, with its first statements
    sent along where that is safe and ``pipeline`` allows (see
    :mod:`clusterdb.drivers.pymysql_handshake`). Raises
    :class:`~clusterdb.drivers.pymysql_handshake.PipelineRefused` when the handshake went
    otherwise: the connection is lost, and the caller connects again the usual way."""
    conn.host_info = f"socket {conn.host}:{conn.port}"
    with pymysql_handshake.Handshake(conn, pipeline):
        conn.connect(sock)  # closes the socket when it fails
    conn._read_timeout = read_timeout
    conn._write_timeout = write_timeout
    return conn


def _open(host: str, port: int, kind: type[socket.socket] = socket.socket) -> socket.socket:
    """A TCP connection to the IP address ``host`` (TCP_NODELAY and SO_KEEPALIVE, as PyMySQL
    sets them), begun and not waited for: the server's greeting says it is made (see
    :func:`_greeted`), so the wait for the one covers the other, and a remote node's round trip
    overlaps what is done meanwhile. No getaddrinfo(), unlike socket.create_connection(): an
    address needs no lookup, and this runs on every connect. ``kind``: the socket class."""
    address = host.strip("[]")
    if "%" in address:  # an IPv6 scope: numeric, so getaddrinfo() asks no resolver
        numeric = socket.AI_NUMERICHOST
        info = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=numeric)
        family, _, _, _, sockaddr = info[0]
    else:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockaddr = (address, port)
    sock = kind(family)
    try:
        sock.setblocking(False)
        error = sock.connect_ex(sockaddr)
        if error not in _UNDER_WAY:
            raise OSError(error, os.strerror(error))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except BaseException:
        sock.close()
        raise
    return sock


# What a non-blocking TCP connect() answers while it goes on. Not EAGAIN: on Linux that says
# no local port is free, a failure to report as PyMySQL would (2003).
_UNDER_WAY = frozenset({0, errno.EINPROGRESS, errno.EINTR})


def _greeted(sock: socket.socket, patience: float) -> bool:
    """True once the server has sent something (its greeting, or an error such as "too many
    connections") or closed the connection (the handshake then says why), False when it
    stayed silent for ``patience`` s, the TCP connect of :func:`_open` included. Raises
    OSError when that connect failed. One poll(): a peek through the socket's own timeout
    would cost two more system calls on every connect."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    events = poller.poll(max(patience, 0.0) * 1000.0)
    if not events:
        return False
    if events[0][1] & select.POLLERR:
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
    return True


def _silence(sock: socket.socket) -> str:
    """What a socket that :func:`_greeted` waited on in vain was waiting for."""
    try:
        sock.getpeername()
    except OSError:
        return "no answer to the TCP connect"
    return "no greeting from the server"


def _cannot_connect(host: str, exc: OSError) -> pymysql.err.OperationalError:
    # PyMySQL's own error for a socket failure, so callers see what PyMySQL would raise.
    return pymysql.err.OperationalError(
        CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {host!r} ({exc})"
    )


def _from_dsn(dsn: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, text in parse_dsn(dsn).items():
        key = _ALIASES.get(key, key)
        convert = _CONVERT.get(key)
        try:
            out[key] = convert(text) if convert else text
        except ValueError:
            raise ConfigError(f"{key}: not a valid value for PyMySQL") from None
    return out


class PyMySQLAdapter(DriverAdapter):
    name = "pymysql"
    module = pymysql
    operational_error = pymysql.err.OperationalError
    causal_kind = "mariadb"
    fetch_row = staticmethod(pymysql_rows.fetch_row)
    tracked_position = staticmethod(tracked_gtid)

    def connect_args(self, node: NodeEntry, kwargs: Mapping[str, Any]) -> ConnectArgs:
        # libpq's "dbname" is accepted for PyMySQL's "database", at every level.
        merged: dict[str, Any] = {_ALIASES.get(k, k): v for k, v in kwargs.items()}
        if node.dsn:
            merged.update(_from_dsn(node.dsn))
        merged.update((_ALIASES.get(k, k), v) for k, v in node.params.items())
        if node.host is not None:
            merged["host"] = node.host
        if node.port is not None:
            merged["port"] = int(node.port)
        unknown = sorted(set(merged) - _ACCEPTED)
        if unknown:
            raise ConfigError(f"PyMySQL does not accept {', '.join(unknown)}")
        return ConnectArgs((), merged)

    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        merged = {**target.kwargs, **overrides} if overrides else target.kwargs
        kwargs, read_timeout, write_timeout = _bounded(merged, timeout)
        conn = TrackingConnection(**kwargs)
        conn._read_timeout = read_timeout
        conn._write_timeout = write_timeout
        return conn

    starts_inline = hasattr(select, "poll")  # see _greeted()
    bound_queries = mysql_bound.bound_pymysql

    def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        # MySQL servers speak first: a greeting within ``patience`` tells a live server from
        # a hung one (a stopped server's kernel still completes the TCP handshake), so the
        # caller's thread does the rest and no thread hand-over is paid. A server still
        # silent is left to a worker, on the same socket, while the racer hedges.
        kwargs = {**target.kwargs, **overrides} if overrides else target.kwargs
        host = kwargs.get("host") or "localhost"
        if (
            kwargs.get("unix_socket")
            or kwargs.get("bind_address")
            or kwargs.get("defer_connect")
            or not needs_no_lookup(str(host))
        ):
            return super().start(target, overrides, timeout, patience)
        port = int(kwargs.get("port") or 3306)
        began = time.monotonic()
        try:
            sock = _open(host, port)
        except OSError as exc:
            raise _cannot_connect(host, exc) from exc
        conn = self._greet_then_handshake(
            sock, host, target, overrides, kwargs, began + patience, began + timeout, idle
        )
        if conn is not None:
            return conn

        def finish(remaining: float) -> Any:
            deadline = time.monotonic() + remaining
            conn = self._greet_then_handshake(
                sock, host, target, overrides, kwargs, deadline, deadline
            )
            if conn is None:
                silence = _silence(sock)
                sock.close()
                raise _cannot_connect(host, TimeoutError(silence))
            return conn

        return Pending(finish, sock.close)

    def _greet_then_handshake(
        self,
        sock: socket.socket,
        host: str,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        kwargs: Mapping[str, Any],
        greet_by: float,
        deadline: float,
        idle: Callable[[], None] | None = None,
    ) -> Any:
        """The connection made on ``sock`` once the server's greeting came (by ``greet_by``),
        or None while the server stays silent (the socket is left open).

        * With ``idle`` (the inline path), the connection object is built and ``idle`` run
          before the wait, overlapping the TCP connect and the server's greeting; otherwise
          it is built once greeted, with what is left until ``deadline``.
        * :class:`~clusterdb.drivers.pymysql_handshake.PipelineRefused` connects again the
          usual way, with what is left until ``deadline``.
        * Any other failure closes ``sock``; an OSError becomes PyMySQL's own error.
        """
        try:
            unconnected = None
            if idle is not None:
                unconnected = _unconnected(kwargs, deadline - time.monotonic())
                idle()
            if not _greeted(sock, greet_by - time.monotonic()):
                return None
            if unconnected is None:
                unconnected = _unconnected(kwargs, deadline - time.monotonic())
        except OSError as exc:
            sock.close()
            raise _cannot_connect(host, exc) from exc
        except BaseException:
            sock.close()
            raise
        conn, read_timeout, write_timeout = unconnected
        try:
            return _handshake(conn, sock, read_timeout, write_timeout, target.pipeline_handshake)
        except pymysql_handshake.PipelineRefused:
            return self.connect(target, overrides, deadline - time.monotonic())

    def detect_role(self, conn: Any) -> Role | None:
        # A plain cursor, no transaction left open: the connection as PyMySQL would give it.
        return role_of(pymysql_rows.fetch_row(conn, ROLE_SQL))

    def probe(self, conn: Any) -> ProbeResult:
        """Role from ``@@read_only`` and replica status, lag from ``SHOW SLAVE STATUS``.

        * No replica status: the role is ``read_only``'s. ``Seconds_Behind_Master`` is the age
          of the oldest event received and not yet applied, in whole seconds; NULL (a
          replication thread stopped or reconnecting) is an unknown lag.
        * A stopped SQL thread applies nothing more, so the replica is ``stopped`` and max_lag
          keeps it out. A stopped IO thread alone (the primary gone) leaves the lag unknown:
          what was received is still applied, as on a PostgreSQL replica whose primary died.
        * Without SLAVE MONITOR (or REPLICATION CLIENT) the role still comes from
          ``read_only`` and only the lag is unknown (warned once): failing the probe would
          mark every node down.
        """
        cursor = pymysql.cursors.Cursor(conn)
        try:
            wsrep = wsrep_status(cursor)
            if wsrep is not None:
                return ProbeResult("replica" if wsrep[0] else "primary", None, wsrep=wsrep[1])
            cursor.execute(ROLE_SQL)
            row = cursor.fetchone()
            read_only = bool(row and int(row[0]))
            try:
                cursor.execute("SHOW SLAVE STATUS")
            except pymysql.err.OperationalError as exc:
                if not exc.args or exc.args[0] != ER.SPECIFIC_ACCESS_DENIED_ERROR:
                    raise
                self._warn_no_lag(exc)
                return ProbeResult("replica" if read_only else "primary", None)
            status = cursor.fetchone()
            columns = [d[0] for d in cursor.description or ()]
        finally:
            cursor.close()
        if status is None:
            return ProbeResult("replica" if read_only else "primary", None)
        fields = dict(zip(columns, status, strict=False))
        if fields.get("Slave_SQL_Running") == "No":
            return ProbeResult("replica", None, stopped=True)
        lag = None if (b := fields.get("Seconds_Behind_Master")) is None else float(b)
        return ProbeResult("replica", lag, applied=pymysql_rows.replica_position(conn))

    _warned_no_lag = False

    def _warn_no_lag(self, exc: BaseException) -> None:
        if PyMySQLAdapter._warned_no_lag:
            return
        PyMySQLAdapter._warned_no_lag = True  # once per process: every probe would repeat it
        log.warning(
            "clusterdb: cannot read replication lag (SHOW SLAVE STATUS: %s); "
            "grant SLAVE MONITOR (or REPLICATION CLIENT) to enforce max_lag",
            exc.args[1] if len(exc.args) > 1 else exc,
        )

    def classify_error(self, exc: BaseException, conn: Any = None) -> ErrorKind | None:
        return pymysql_errors.classify(exc, conn)

    def socket_fd(self, conn: Any) -> int | None:
        sock = getattr(conn, "_sock", None)
        return None if sock is None else int(sock.fileno())
