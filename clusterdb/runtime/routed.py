"""``connect(name, role="auto")``: a PEP 249 connection that routes each statement.

A :class:`RoutedConnection` holds up to two of the driver's connections, each opened when
first needed: one to the primary and one for reads (``prefer-replica``, through
:mod:`clusterdb.runtime.freshness`, so that it has applied this connection's writes). The
decisions are :class:`~clusterdb.core.routing.RoutingState`'s; this module does the I/O.
Errors are the driver's own, reported to clusterdb (:func:`clusterdb.report_error`) first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

from clusterdb.core.routing import Target
from clusterdb.core.statement import Classification
from clusterdb.runtime import freshness
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect
from clusterdb.runtime.routed_base import (
    CALLPROC,
    REFUSED,
    CursorBase,
    RoutedBase,
    keep_classifier,
    log,
    lookup_query,
)

__all__ = ["RoutedConnection", "RoutedCursor"]


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _set_autocommit(conn: Any, value: bool) -> None:
    current = conn.autocommit
    if callable(current):  # PyMySQL: a method
        current(value)
    else:
        conn.autocommit = value


class RoutedConnection(RoutedBase):
    """A PEP 249 connection over a primary and a replica connection (see the module)."""

    def __init__(
        self, cluster: Cluster, overrides: Mapping[str, Any], after: str | None = None
    ) -> None:
        module = cluster.adapter.module
        cursor_class = getattr(module, "Cursor", None) or module.cursors.Cursor
        super().__init__(cluster, overrides, module, after, cursor_class)

    # -- the driver connections ---------------------------------------------------------

    def _connection(self, target: Target) -> Any:
        """The driver connection for ``target``, opened (or made fresh) when needed."""
        if target == "primary":
            if self._primary is None:
                self._primary = connect(self._cluster, "primary", self._open_overrides())
            return self._primary
        if self._replica is not None and self._state.replica_fresh():
            return self._replica
        return self._fresh_replica()

    def _fresh_replica(self) -> Any:
        state = self._state
        if state.unsynced:
            state.token_taken(
                None if self._primary is None else freshness.take_token(self._primary)
            )
        kept = self._replica
        if kept is not None and (
            state.replica_fresh()
            or (state.token is not None and freshness.applied(self._cluster, kept, state.token))
        ):
            state.replica_at(state.token)
            self._restate()
            return kept
        self._replica = None
        if kept is not None:
            _close_quietly(kept)
        self._replica = freshness.open_replica(self._cluster, state.token, self._open_overrides())
        state.replica_at(state.token)
        self._restate()
        return self._replica

    def _load_classifier(self) -> None:
        """The cluster's classifier: its functions that may write, read once per cluster."""
        conn = self._primary or self._connection("replica")
        rows = None
        try:
            cur = conn.cursor()
            try:
                cur.execute(lookup_query(self._cluster))
                rows = cur.fetchall()
            finally:
                cur.close()
        except Exception as exc:
            log.warning("clusterdb: writing functions of %s not read: %s", self._cluster.name, exc)
        if not self._state.autocommit:
            conn.rollback()
        self._classify = keep_classifier(self._cluster, rows).classify

    def _plan(self, query: Any) -> tuple[Classification, Target]:
        if self._classify is None and not self._closed:
            self._load_classifier()
        return super()._plan(query)

    def _report(self, target: Target, conn: Any, exc: BaseException) -> None:
        dropped = self._failed(target, conn, exc)
        if dropped is not None:
            _close_quietly(dropped)

    # -- PEP 249 ------------------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> RoutedCursor:
        """A cursor whose statements are routed; arguments go to each driver cursor."""
        if self._closed:
            raise self._errors.InterfaceError("the routed connection is closed")
        return RoutedCursor(self, args, kwargs)

    def execute(self, query: Any, params: Any = None) -> RoutedCursor:
        """A new cursor that ran ``query`` (psycopg's shortcut, for both drivers)."""
        cur = self.cursor()
        cur.execute(query, params)
        return cur

    def _end(self, committed: bool) -> None:
        if self._closed:
            raise self._errors.InterfaceError("the routed connection is closed")
        target = self._state.transaction
        if target is None:
            return
        conn = self._held(target)
        try:
            if conn is not None:
                conn.commit() if committed else conn.rollback()
        except Exception as exc:
            self._state.ended(committed=False)
            self._report(target, conn, exc)
            raise
        finally:
            self._restate()
        self._state.ended(committed)
        self._restate()

    def commit(self) -> None:
        """Commit the open transaction, where it runs (nothing when none is open)."""
        self._end(True)

    def rollback(self) -> None:
        """Roll back the open transaction, where it runs."""
        self._end(False)

    @property
    def autocommit(self) -> bool:
        """On by default: each statement outside a transaction is routed on its own."""
        return self._state.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._check_idle("autocommit")
        self._state.set_autocommit(bool(value))
        self._restate()
        for conn in (self._primary, self._replica):
            if conn is not None:
                _set_autocommit(conn, bool(value))

    @contextlib.contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """psycopg's ``transaction()`` on the primary (on a replica for a ``read_only``
        connection), the whole block there; nested blocks are savepoints in it."""
        state = self._state
        outer = state.transaction is None
        target = self._transaction_target()
        conn = self._connection(target)
        committed = False
        try:
            with conn.transaction(*args, **kwargs) as tx:
                if outer:
                    state.opened(target)
                    self._restate()
                yield tx
            committed = not kwargs.get("force_rollback", False)
        finally:
            if outer:
                state.ended(committed)
                self._restate()

    def close(self) -> None:
        """Close both driver connections (a second close raises where the driver's does)."""
        if self._closed and self._dialect == "mysql":
            raise self._errors.Error("Already closed")  # PyMySQL's
        self._closed = True
        self._state.ended(committed=False)
        self._restate()
        for conn in (self._primary, self._replica):
            if conn is not None:
                _close_quietly(conn)
        self._primary = self._replica = None

    def __enter__(self) -> RoutedConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Commit (roll back on an exception), then close, as psycopg's connection does."""
        try:
            if not self._closed:
                self._end(exc_type is None)
        finally:
            if not self._closed:
                self.close()


class RoutedCursor(CursorBase):
    """A cursor of a :class:`RoutedConnection`: each execute() runs on the connection its
    statement is routed to, with a driver cursor kept per connection; fetch*, description and
    rowcount are those of the driver cursor that ran the last statement."""

    connection: RoutedConnection

    def _run(
        self, c: Classification, target: Target, method: str, args: tuple[Any, ...], kw: Any
    ) -> Any:
        routed = self.connection
        conn = routed._connection(target)
        cur = self._cursor(target, conn)
        try:
            result = getattr(cur, method)(*args, **kw)
        except Exception as exc:
            routed._report(target, conn, exc)
            if not routed._retry_on_primary(target, conn, exc, args[0]):
                raise
            return self._run(REFUSED, routed._decide(REFUSED), method, args, kw)
        return self._done(c, target, cur, result)

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        """Run ``query`` where it is routed. Returns what the driver's execute() returns
        (PyMySQL: the row count), or this cursor where the driver returns its cursor."""
        routed = self.connection
        # CursorBase._fast() inline: a plain read seen before, in a steady state.
        if type(query) is str and query in routed._fast_reads:
            kept = self._cursors.get("replica")
            if kept is not None and kept[0] is routed._replica:
                conn, cur = kept
                try:
                    result = (
                        cur.execute(query, params, **kwargs)
                        if kwargs
                        else cur.execute(query, params)
                    )
                except Exception as exc:
                    routed._report("replica", conn, exc)
                    if not routed._retry_on_primary("replica", conn, exc, query):
                        raise
                    return self._run(REFUSED, "primary", "execute", (query, params), kwargs)
                routed.last_target = "replica"  # CursorBase._read() inline
                if self._current is not cur:
                    self._now_on(cur)
                return self if result is cur else result
        c, target = self.connection._plan(query)
        return self._run(c, target, "execute", (query, params), kwargs)

    def executemany(self, query: Any, seq_of_params: Any, **kwargs: Any) -> Any:
        c, target = self.connection._plan(query)
        return self._run(c, target, "executemany", (query, seq_of_params), kwargs)

    def _callproc(self, procname: str, params: Any = ()) -> Any:
        """``callproc()`` where the driver has it: runs on the primary (a procedure may
        write)."""
        target = self.connection._decide(CALLPROC)
        return self._run(CALLPROC, target, "callproc", (procname, params), {})

    def fetchone(self) -> Any:
        cur = self._current
        return (cur if cur is not None else self._last()).fetchone()

    def fetchmany(self, size: int | None = None) -> Any:
        return self._last().fetchmany(self._arraysize if size is None else size)

    def fetchall(self) -> Any:
        return self._last().fetchall()

    def nextset(self) -> Any:
        return self._last().nextset()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._last())

    def close(self) -> None:
        self._closed = True
        for _, cur in self._cursors.values():
            _close_quietly(cur)
        self._cursors.clear()

    def __enter__(self) -> RoutedCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
