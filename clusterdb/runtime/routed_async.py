"""``await connect_async(name, role="auto")``: :mod:`clusterdb.runtime.routed` on the event
loop. The same decisions (:class:`~clusterdb.core.routing.RoutingState`, through
:class:`~clusterdb.runtime.routed_base.RoutedBase`); the driver connections are the asyncio
driver's (psycopg's ``AsyncConnection``, asyncmy), opened by :func:`connect_async`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from clusterdb.core.routing import Target
from clusterdb.core.statement import Classification
from clusterdb.drivers import get_async_adapter
from clusterdb.runtime import freshness
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect_async import connect_async
from clusterdb.runtime.routed_base import (
    CALLPROC,
    REFUSED,
    CursorBase,
    RoutedBase,
    errors_of,
    keep_classifier,
    log,
    lookup_query,
)

__all__ = ["AsyncRoutedConnection", "AsyncRoutedCursor"]


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        closing = conn.close()
        if closing is not None:  # psycopg: a coroutine; asyncmy: closes at once
            await closing


async def _set_autocommit(conn: Any, value: bool) -> None:
    setter = getattr(conn, "set_autocommit", None)  # psycopg's AsyncConnection
    await (setter(value) if setter is not None else conn.autocommit(value))


class AsyncRoutedConnection(RoutedBase):
    """:class:`~clusterdb.runtime.routed.RoutedConnection` for asyncio: ``cursor()`` as
    usual, and ``await`` for execute, fetch*, commit, rollback and close."""

    def __init__(
        self, cluster: Cluster, overrides: Mapping[str, Any], after: str | None = None
    ) -> None:
        errors = errors_of(get_async_adapter(cluster.adapter).operational_error)
        cursor_class = getattr(errors, "AsyncCursor", None)  # psycopg; asyncmy's:
        if cursor_class is None:
            cursor_class = importlib.import_module("asyncmy.cursors").Cursor
        super().__init__(cluster, overrides, errors, after, cursor_class)

    async def _connection(self, target: Target) -> Any:
        if target == "primary":
            if self._primary is None:
                self._primary = await connect_async(
                    self._cluster, "primary", self._open_overrides()
                )
            return self._primary
        if self._replica is not None and self._state.replica_fresh():
            return self._replica
        return await self._fresh_replica()

    async def _fresh_replica(self) -> Any:
        state = self._state
        if state.unsynced:
            primary = self._primary
            state.token_taken(
                None if primary is None else await freshness.take_token_async(primary)
            )
        kept = self._replica
        if kept is not None and (
            state.replica_fresh()
            or (
                state.token is not None
                and await freshness.applied_async(self._cluster, kept, state.token)
            )
        ):
            state.replica_at(state.token)
            self._restate()
            return kept
        self._replica = None
        if kept is not None:
            await _close_quietly(kept)
        self._replica = await freshness.open_replica_async(
            self._cluster, state.token, self._open_overrides()
        )
        state.replica_at(state.token)
        self._restate()
        return self._replica

    async def _load_classifier(self) -> None:
        conn = self._primary or await self._connection("replica")
        rows = None
        try:
            cur = conn.cursor()
            try:
                await cur.execute(lookup_query(self._cluster))
                rows = await cur.fetchall()
            finally:
                await _close_quietly(cur)
        except Exception as exc:
            log.warning("clusterdb: writing functions of %s not read: %s", self._cluster.name, exc)
        if not self._state.autocommit:
            await conn.rollback()
        self._classify = keep_classifier(self._cluster, rows).classify

    async def _plan_async(self, query: Any) -> tuple[Classification, Target]:
        if self._classify is None and not self._closed:
            await self._load_classifier()
        return self._plan(query)

    async def _report(self, target: Target, conn: Any, exc: BaseException) -> None:
        dropped = self._failed(target, conn, exc)
        if dropped is not None:
            await _close_quietly(dropped)

    def cursor(self, *args: Any, **kwargs: Any) -> AsyncRoutedCursor:
        if self._closed:
            raise self._errors.InterfaceError("the routed connection is closed")
        return AsyncRoutedCursor(self, args, kwargs)

    async def execute(self, query: Any, params: Any = None) -> AsyncRoutedCursor:
        cur = self.cursor()
        await cur.execute(query, params)
        return cur

    async def _end(self, committed: bool) -> None:
        if self._closed:
            raise self._errors.InterfaceError("the routed connection is closed")
        target = self._state.transaction
        if target is None:
            return
        conn = self._held(target)
        try:
            if conn is not None:
                await (conn.commit() if committed else conn.rollback())
        except Exception as exc:
            self._state.ended(committed=False)
            await self._report(target, conn, exc)
            raise
        finally:
            self._restate()
        self._state.ended(committed)
        self._restate()

    async def commit(self) -> None:
        await self._end(True)

    async def rollback(self) -> None:
        await self._end(False)

    @property
    def autocommit(self) -> bool:
        return self._state.autocommit

    async def set_autocommit(self, value: bool) -> None:
        """Turn autocommit on or off (psycopg's AsyncConnection spelling)."""
        self._check_idle("autocommit")
        self._state.set_autocommit(bool(value))
        self._restate()
        for conn in (self._primary, self._replica):
            if conn is not None:
                await _set_autocommit(conn, bool(value))

    @contextlib.asynccontextmanager
    async def transaction(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """psycopg's ``transaction()``, wholly on the primary (a replica when read_only)."""
        state = self._state
        outer = state.transaction is None
        target = self._transaction_target()
        conn = await self._connection(target)
        committed = False
        try:
            async with conn.transaction(*args, **kwargs) as tx:
                if outer:
                    state.opened(target)
                    self._restate()
                yield tx
            committed = not kwargs.get("force_rollback", False)
        finally:
            if outer:
                state.ended(committed)
                self._restate()

    async def close(self) -> None:
        self._closed = True
        self._state.ended(committed=False)
        self._restate()
        for conn in (self._primary, self._replica):
            if conn is not None:
                await _close_quietly(conn)
        self._primary = self._replica = None

    async def __aenter__(self) -> AsyncRoutedConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._closed:
                await self._end(exc_type is None)
        finally:
            await self.close()


class AsyncRoutedCursor(CursorBase):
    """A cursor of an :class:`AsyncRoutedConnection` (see RoutedCursor)."""

    connection: AsyncRoutedConnection

    async def _run(
        self, c: Classification, target: Target, method: str, args: tuple[Any, ...], kw: Any
    ) -> Any:
        routed = self.connection
        conn = await routed._connection(target)
        cur = self._cursor(target, conn)
        try:
            result = await getattr(cur, method)(*args, **kw)
        except Exception as exc:
            await routed._report(target, conn, exc)
            if not routed._retry_on_primary(target, conn, exc, args[0]):
                raise
            return await self._run(REFUSED, routed._decide(REFUSED), method, args, kw)
        return self._done(c, target, cur, result)

    async def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        kept = self._fast(query)
        if kept is not None:
            conn, cur = kept
            try:
                result = await cur.execute(query, params, **kwargs)
            except Exception as exc:
                await self.connection._report("replica", conn, exc)
                if not self.connection._retry_on_primary("replica", conn, exc, query):
                    raise
                return await self._run(REFUSED, "primary", "execute", (query, params), kwargs)
            return self._read(cur, result)
        c, target = await self.connection._plan_async(query)
        return await self._run(c, target, "execute", (query, params), kwargs)

    async def executemany(self, query: Any, seq_of_params: Any, **kwargs: Any) -> Any:
        c, target = await self.connection._plan_async(query)
        return await self._run(c, target, "executemany", (query, seq_of_params), kwargs)

    async def _callproc(self, procname: str, params: Any = ()) -> Any:
        target = self.connection._decide(CALLPROC)
        return await self._run(CALLPROC, target, "callproc", (procname, params), {})

    async def fetchone(self) -> Any:
        return await self._last().fetchone()

    async def fetchmany(self, size: int | None = None) -> Any:
        return await self._last().fetchmany(self._arraysize if size is None else size)

    async def fetchall(self) -> Any:
        return await self._last().fetchall()

    async def close(self) -> None:
        self._closed = True
        for _, cur in self._cursors.values():
            await _close_quietly(cur)
        self._cursors.clear()

    async def __aenter__(self) -> AsyncRoutedCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
