"""psycopg 3: nodes become libpq conninfo strings; the role comes free with the connection."""

from __future__ import annotations

import functools
import math
import select
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg import generators
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.errors import ConnectionTimeout
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg.waiting import Ready, Wait

from clusterdb.core.causal import parse_lsn
from clusterdb.core.description import Role
from clusterdb.drivers.base import (
    ConnectArgs,
    DriverAdapter,
    ErrorKind,
    Pending,
    ProbeResult,
    needs_no_lookup,
    nothing,
)
from clusterdb.drivers.fork_gate import LIBPQ
from clusterdb.drivers.psycopg_wait import bound_waits

if TYPE_CHECKING:
    from clusterdb.config import NodeEntry

__all__ = ["PsycopgAdapter", "direct_conninfo"]

# Keywords of psycopg.Connection.connect() that are Python settings, not libpq parameters.
# ``connection_class`` is clusterdb's own: the psycopg.Connection subclass to instantiate.
_PYTHON_KEYS = frozenset(
    {
        "autocommit",
        "prepare_threshold",
        "context",
        "row_factory",
        "cursor_factory",
        "connection_class",
    }
)

# psycopg's own connect() bound to any class: a Connection subclass that overrides connect()
# (clusterdb.psycopg.Connection does, for psycopg_pool) is still built by psycopg itself.
_base_connect = cast(Callable[..., Any], vars(psycopg.Connection)["connect"].__func__)

# One round trip: role, and on a replica its lag. Nothing left to replay (everything received
# is replayed) is no lag; otherwise the lag is the age of the last transaction replayed, which
# is what a reader sees (with recovery_min_apply_delay, WAL is received at once and replayed
# late). The age over-states the lag when the primary was idle before its latest write; an
# over-estimate only keeps a replica out of rotation a little longer.
_PROBE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT NULL
             AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0.0
            ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
       END,
       pg_last_wal_replay_lsn()::text
"""

_IDLE = TransactionStatus.IDLE

# libpq (and psycopg, which follows it) counts connect_timeout in whole seconds, at least 2.
_MIN_DRIVER_TIMEOUT = 2

# psycopg's own parameter hook: a connection class that overrides it (to fetch a token, say)
# is connected through psycopg's connect(), in a worker, never by start().
_BASE_PARAMS = vars(psycopg.Connection)["_get_connection_params"].__func__
_SEVERAL = ("host", "hostaddr", "port")

# SQLSTATEs of a connection that is gone, besides class 08 (connection exception): the server
# shut down or crashed, or is starting or stopping.
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
_READ_ONLY_STATE = "25006"  # read_only_sql_transaction


class _Connecting:
    """psycopg's non-blocking connect generator, driven here so that it can be paused when the
    server is slow and resumed in another thread, as psycopg's ``wait_conn`` would drive it."""

    def __init__(self, conninfo: str) -> None:
        self.gen: Generator[tuple[int, Wait], Ready | int, Any] = generators.connect(conninfo)
        self.done: Any = None
        try:
            with LIBPQ:  # every step inside libpq: see clusterdb.drivers.fork_gate
                self.fileno, self.wait = next(self.gen)
        except StopIteration as done:  # connected without ever blocking
            self.done = done.value

    def run(self, until: float) -> Any:
        """The connection's PGconn once libpq is done, or None at ``until`` (monotonic)."""
        if self.done is not None:
            return self.done
        while True:
            ready = _ready(self.fileno, self.wait, until - time.monotonic())
            if ready:
                try:
                    with LIBPQ:
                        self.fileno, self.wait = self.gen.send(ready)
                except StopIteration as done:
                    return done.value
            elif time.monotonic() >= until:
                return None

    def close(self) -> None:
        self.gen.close()  # the half-open PGconn goes with it (freed, socket closed)


def _finish(connecting: _Connecting, until: float) -> Any:
    """The PGconn of ``connecting`` by ``until`` (monotonic), else psycopg's timeout error;
    closed on any failure."""
    try:
        pgconn = connecting.run(until)
    except BaseException:
        connecting.close()
        raise
    if pgconn is None:
        connecting.close()
        raise ConnectionTimeout("connection timeout expired")
    return pgconn


def _ready(fileno: int, wait: Wait, timeout: float) -> int:
    """Wait up to ``timeout`` s for ``fileno`` to be ready for ``wait``: the Ready bits."""
    poller = select.poll()
    poller.register(
        fileno, (select.POLLIN if wait & Wait.R else 0) | (select.POLLOUT if wait & Wait.W else 0)
    )
    ready = 0
    for _, events in poller.poll(max(0.0, timeout) * 1000.0):
        if events & (select.POLLIN | select.POLLERR | select.POLLHUP):
            ready |= Ready.R
        if events & (select.POLLOUT | select.POLLERR | select.POLLHUP):
            ready |= Ready.W
    return ready & int(wait)


def direct_conninfo(conninfo: str, libpq: Mapping[str, Any]) -> str | None:
    """The conninfo of one attempt on one host given by address: ``conninfo`` with the libpq
    parameters ``libpq`` on top; None when psycopg's own attempts must run (several hosts, or
    a name to look up).

    Cached when ``libpq`` holds only ``connect_timeout`` (no per-connect override): libpq
    parses the string twice to work it out, some 100 µs of a 4 ms connect on 2 cores, the
    same every time for a node."""
    if len(libpq) == 1 and "connect_timeout" in libpq:
        return _direct_cached(conninfo, libpq["connect_timeout"])
    return _direct(conninfo, libpq)


def _direct(conninfo: str, libpq: Mapping[str, Any]) -> str | None:
    params = conninfo_to_dict(conninfo, **libpq)
    if any("," in str(params.get(key, "")) for key in _SEVERAL) or not (
        params.get("hostaddr") or needs_no_lookup(str(params.get("host") or "/"))
    ):
        return None
    return make_conninfo("", **params)


@functools.lru_cache(maxsize=256)  # nodes x timeouts; thread-safe
def _direct_cached(conninfo: str, connect_timeout: int) -> str | None:
    return _direct(conninfo, {"connect_timeout": connect_timeout})


def _wrap(cls: Any, pgconn: Any, python: Mapping[str, Any]) -> Any:
    """What psycopg's connect() does with a fresh PGconn, through public attributes only.

    (psycopg's connect() also warns when libpq chose GSSAPI encryption unasked; that warning
    is not repeated here.)"""
    conn = cls(pgconn)
    conn.autocommit = bool(python.get("autocommit", False))
    if python.get("row_factory"):
        conn.row_factory = python["row_factory"]
    if python.get("cursor_factory"):
        conn.cursor_factory = python["cursor_factory"]
    conn.prepare_threshold = python.get("prepare_threshold", 5)
    return conn


def _plain_params(cls: Any) -> bool:
    hook = getattr(cls, "_get_connection_params", None)
    return getattr(hook, "__func__", None) is _BASE_PARAMS


class PsycopgAdapter(DriverAdapter):
    name = "psycopg"
    module = psycopg
    operational_error = psycopg.OperationalError
    role_is_free = True
    causal_kind = "pg"

    def connect_args(self, node: NodeEntry, kwargs: Mapping[str, Any]) -> ConnectArgs:
        python_kw = {k: v for k, v in kwargs.items() if k in _PYTHON_KEYS}
        conninfo_kw = {k: v for k, v in kwargs.items() if k not in _PYTHON_KEYS}
        # Precedence: cluster-wide kwargs < the node's DSN < the node's own keys.
        if node.dsn:
            conninfo_kw.update(conninfo_to_dict(node.dsn))
        for key, value in node.params.items():
            (python_kw if key in _PYTHON_KEYS else conninfo_kw)[key] = value
        if node.host is not None:
            conninfo_kw["host"] = node.host
        if node.port is not None:
            conninfo_kw["port"] = node.port
        # make_conninfo() validates every key against libpq: a typo fails at register time.
        return ConnectArgs((make_conninfo("", **conninfo_kw),), python_kw)

    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        kwargs = {**target.kwargs, **overrides} if overrides else dict(target.kwargs)
        kwargs["connect_timeout"] = budget = max(_MIN_DRIVER_TIMEOUT, math.ceil(timeout))
        cls = kwargs.pop("connection_class", psycopg.Connection)
        if kwargs.get("context") is None and _plain_params(cls):
            python = {k: kwargs.pop(k) for k in list(kwargs) if k in _PYTHON_KEYS}
            conninfo = direct_conninfo(target.args[0], kwargs)
            if conninfo is not None:  # driven here: each libpq step inside the fork gate
                pgconn = _finish(_Connecting(conninfo), time.monotonic() + budget)
                return _wrap(cls, pgconn, python)
            kwargs.update(python)
        return _base_connect(cls, target.args[0], **kwargs)

    starts_inline = hasattr(select, "poll")

    def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        # psycopg connects through a generator that yields whenever libpq would block: it is
        # driven here for up to ``patience`` (the hedge delay), so a healthy node costs no
        # hand-over to a worker thread and back; a slow one is handed, generator and all, to a
        # worker while the racer hedges. Anything psycopg's connect() would treat specially
        # takes the worker path instead.
        kwargs = {**target.kwargs, **overrides} if overrides else dict(target.kwargs)
        cls = kwargs.pop("connection_class", psycopg.Connection)
        if kwargs.get("context") is not None or not _plain_params(cls):
            return super().start(target, overrides, timeout, patience)
        python = {k: kwargs.pop(k) for k in list(kwargs) if k in _PYTHON_KEYS}
        budget = max(_MIN_DRIVER_TIMEOUT, math.ceil(timeout))
        kwargs["connect_timeout"] = budget
        conninfo = direct_conninfo(target.args[0], kwargs)
        if conninfo is None:  # several hosts (psycopg's own attempts, in order), or a name
            return super().start(target, overrides, timeout, patience)
        began = time.monotonic()
        deadline = began + budget
        connecting = _Connecting(conninfo)
        try:
            idle()  # the TCP connect is under way
            pgconn = connecting.run(min(deadline, began + patience))
        except BaseException:
            connecting.close()
            raise
        if pgconn is not None:
            return _wrap(cls, pgconn, python)

        def finish(remaining: float) -> Any:
            pgconn = _finish(connecting, min(deadline, time.monotonic() + remaining))
            return _wrap(cls, pgconn, python)

        return Pending(finish, connecting.close)

    def bound_queries(
        self, conn: Any, bound: float, report: Callable[[Any, BaseException], object]
    ) -> bool:
        bound_waits(conn, bound, report)  # libpq's keepalives miss a frozen node
        return True

    def detect_role(self, conn: Any) -> Role | None:
        # Reported by the server at connect time (PostgreSQL >= 14) and on every change, so
        # reading it costs no round trip. Older servers do not report it: the role stays
        # unknown here (a role="primary" connect cannot refuse a replica) and is left to the
        # monitor's probe.
        status = conn.info.parameter_status("in_hot_standby")
        if status == "on":
            return "replica"
        if status == "off":
            return "primary"
        return None

    def classify_error(self, exc: BaseException, conn: Any = None) -> ErrorKind | None:
        # 25006 on a standby is the node's; on a primary (in_hot_standby "off") it is a
        # transaction the session declared READ ONLY, which says nothing about the node.
        if not isinstance(exc, psycopg.Error):
            return None
        state = exc.sqlstate
        if state == _READ_ONLY_STATE:
            standby = None
            if conn is not None and not conn.closed:
                standby = conn.info.parameter_status("in_hot_standby")
            return None if standby == "off" else "read_only"
        if state is not None:
            return "lost" if state.startswith("08") or state in _LOST_STATES else None
        if isinstance(exc, psycopg.OperationalError) and (conn is None or conn.broken):
            return "lost"
        return None

    def probe(self, conn: Any) -> ProbeResult:
        row = conn.execute(_PROBE_SQL).fetchone()
        if row is None:
            return ProbeResult(self.detect_role(conn), None)
        in_recovery, lag, replayed = row
        applied = parse_lsn(replayed) if in_recovery and replayed else None
        return ProbeResult("replica" if in_recovery else "primary", lag, applied=applied)

    def fetch_row(self, conn: Any, sql: str) -> tuple[Any, ...] | None:
        # Autocommit for the query when no transaction is open: none is left open, at no
        # round trip (psycopg switches it client-side while idle).
        idle = not conn.autocommit and conn.info.transaction_status == _IDLE
        if idle:
            conn.autocommit = True
        try:
            with conn.cursor(row_factory=tuple_row) as cursor:
                row: tuple[Any, ...] | None = cursor.execute(sql).fetchone()
        finally:
            if idle:
                conn.autocommit = False
        return row
