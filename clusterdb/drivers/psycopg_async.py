"""psycopg's asyncio connections (``psycopg.AsyncConnection``) for psycopg clusters.

libpq's non-blocking connect is driven on the caller's loop: psycopg's own connect generator
(the one ``AsyncConnection.connect()`` drives) waits on loop readers, writers and one loop
timer, and is closed, its half-open connection freed and its socket closed, the moment the
attempt fails, times out or is cancelled (``AsyncConnection.connect()`` leaves that to the
garbage collector, and an error's traceback can keep it alive). A node given by name is
resolved with psycopg's asynchronous resolver first.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any, TypeVar, cast

import psycopg
from psycopg import generators
from psycopg.conninfo import conninfo_attempts_async, conninfo_to_dict, make_conninfo
from psycopg.errors import ConnectionTimeout
from psycopg.pq import TransactionStatus
from psycopg.rows import tuple_row
from psycopg.waiting import Wait

from clusterdb.core.description import Role
from clusterdb.drivers.asyncio_base import AsyncAdapter, AsyncPending, wait_ready
from clusterdb.drivers.base import ConnectArgs, nothing
from clusterdb.drivers.fork_gate import LIBPQ
from clusterdb.drivers.psycopg import (
    _MIN_DRIVER_TIMEOUT,
    _PYTHON_KEYS,
    PsycopgAdapter,
    direct_conninfo,
)
from clusterdb.drivers.psycopg_wait import bound_waits_async

__all__ = ["PsycopgAsyncAdapter"]

# psycopg's own connect() bound to any class, and its parameter hook: a class that overrides
# the hook (to fetch a token, say) is connected by psycopg itself.
_base_connect = cast(Callable[..., Any], vars(psycopg.AsyncConnection)["connect"].__func__)
_BASE_PARAMS = vars(psycopg.AsyncConnection)["_get_connection_params"].__func__

_TIMED_OUT = "connection timeout expired"  # psycopg's words
_T = TypeVar("_T")


def _plain_params(cls: Any) -> bool:
    hook = getattr(cls, "_get_connection_params", None)
    return getattr(hook, "__func__", None) is _BASE_PARAMS


class _Connecting:
    """psycopg's connect generator, driven on the loop until a given time: paused there (the
    server is slow: the attempt goes on in a task) or run to its PGconn. Closed, the half-open
    PGconn and its socket with it, on any failure or cancellation."""

    __slots__ = ("done", "fileno", "gen", "wait")

    def __init__(self, conninfo: str) -> None:
        self.gen: Generator[tuple[int, Wait], int, Any] = generators.connect(conninfo)
        self.done: Any = None
        try:
            with LIBPQ:  # every step inside libpq: see clusterdb.drivers.fork_gate
                self.fileno, self.wait = next(self.gen)  # the TCP connect is under way
        except StopIteration as finished:
            self.done = finished.value

    async def run(self, until: float) -> Any:
        """The PGconn once libpq is done, or None at ``until`` (monotonic)."""
        if self.done is not None:
            return self.done
        loop = asyncio.get_running_loop()
        try:
            while True:
                ready = await wait_ready(loop, self.fileno, self.wait, until - time.monotonic())
                if not ready:
                    return None
                with LIBPQ:
                    self.fileno, self.wait = self.gen.send(ready)
        except StopIteration as finished:
            return finished.value
        except OSError as exc:
            self.gen.close()
            raise psycopg.OperationalError("connection socket closed") from exc
        except BaseException:
            self.gen.close()
            raise

    async def finish(self, deadline: float) -> Any:
        """The PGconn by ``deadline``, else psycopg's timeout error (the attempt closed)."""
        pgconn = await self.run(deadline)
        if pgconn is None:
            self.gen.close()
            raise ConnectionTimeout(_TIMED_OUT)
        return pgconn

    def close(self) -> None:
        self.gen.close()


async def _first(attempts: Sequence[Mapping[str, Any]], deadline: float) -> Any:
    """The PGconn of the first of ``attempts`` (one per address, in psycopg's order) to connect
    by ``deadline``; else the last error."""
    error: Exception = ConnectionTimeout(_TIMED_OUT)
    for attempt in attempts:
        if time.monotonic() >= deadline:
            break
        try:
            return await _Connecting(make_conninfo("", **attempt)).finish(deadline)
        except psycopg.Error as exc:
            error = exc
    raise error


async def _bounded(work: Awaitable[_T], timeout: float) -> _T:
    """``work`` (psycopg's own), given up after ``timeout`` s as psycopg would."""
    try:
        async with asyncio.timeout(timeout):
            return await work
    except TimeoutError:
        raise ConnectionTimeout(_TIMED_OUT) from None


class PsycopgAsyncAdapter(AsyncAdapter):
    name = "psycopg"
    operational_error = psycopg.OperationalError
    role_is_free = True

    def __init__(self) -> None:
        self._sync = PsycopgAdapter()

    def _prepare(
        self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float
    ) -> tuple[Any, dict[str, Any]]:
        """The connection class, and psycopg's keyword arguments with a libpq
        ``connect_timeout`` (whole seconds, at least 2)."""
        kwargs = {**target.kwargs, **overrides} if overrides else dict(target.kwargs)
        cls = kwargs.pop("connection_class", psycopg.AsyncConnection)
        kwargs["connect_timeout"] = max(_MIN_DRIVER_TIMEOUT, math.ceil(timeout))
        return cls, kwargs

    @staticmethod
    def _own(cls: Any, kwargs: Mapping[str, Any]) -> bool:
        """Whether psycopg's own connect() must run: a parameter hook or a context."""
        return kwargs.get("context") is not None or not _plain_params(cls)

    @staticmethod
    def _python(kwargs: dict[str, Any]) -> dict[str, Any]:
        """psycopg's Python settings, taken out of ``kwargs`` (libpq's parameters stay)."""
        return {k: kwargs.pop(k) for k in list(kwargs) if k in _PYTHON_KEYS}

    async def connect(
        self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float
    ) -> Any:
        deadline = time.monotonic() + timeout
        cls, kwargs = self._prepare(target, overrides, timeout)
        if self._own(cls, kwargs):
            return await _bounded(_base_connect(cls, target.args[0], **kwargs), timeout)
        python = self._python(kwargs)
        conninfo = direct_conninfo(target.args[0], kwargs)
        if conninfo is not None:
            pgconn = await _Connecting(conninfo).finish(deadline)
        else:  # several hosts, or a name: psycopg's attempts, names resolved without blocking
            params = conninfo_to_dict(target.args[0], **kwargs)
            attempts = await _bounded(conninfo_attempts_async(params), timeout)
            pgconn = await _first(attempts, deadline)
        return await self._wrap(cls, pgconn, python)

    starts_inline = True

    async def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        # psycopg's connect generator runs in the caller's task for up to ``patience`` (the
        # hedge delay): a healthy node costs no task; a slow one is handed, generator and
        # all, to a task while the race hedges.
        began = time.monotonic()
        cls, kwargs = self._prepare(target, overrides, timeout)
        if self._own(cls, kwargs):
            return await super().start(target, overrides, timeout, patience)
        python = self._python(kwargs)
        conninfo = direct_conninfo(target.args[0], kwargs)
        if conninfo is None:
            return await super().start(target, overrides, timeout, patience)
        deadline = began + timeout
        connecting = _Connecting(conninfo)
        idle()  # the TCP connect is under way
        pgconn = await connecting.run(min(deadline, began + patience))
        if pgconn is not None:
            return await self._wrap(cls, pgconn, python)

        async def finish(remaining: float) -> Any:
            pgconn = await connecting.finish(min(deadline, time.monotonic() + remaining))
            return await self._wrap(cls, pgconn, python)

        return AsyncPending(finish, connecting.close)

    async def _wrap(self, cls: Any, pgconn: Any, python: Mapping[str, Any]) -> Any:
        """What psycopg's connect() does with a fresh PGconn, through public attributes."""
        conn = cls(pgconn)
        try:
            if python.get("autocommit"):
                await conn.set_autocommit(True)  # no I/O on a new connection
            if python.get("row_factory"):
                conn.row_factory = python["row_factory"]
            if python.get("cursor_factory"):
                conn.cursor_factory = python["cursor_factory"]
            conn.prepare_threshold = python.get("prepare_threshold", 5)
        except BaseException:
            await self.close(conn)
            raise
        return conn

    def bound_queries(
        self, conn: Any, bound: float, report: Callable[[Any, BaseException], object]
    ) -> bool:
        bound_waits_async(conn, bound, report)
        return True

    async def detect_role(self, conn: Any) -> Role | None:
        return self._sync.detect_role(conn)  # reported by the server: no round trip

    causal_kind = "pg"

    async def fetch_row(self, conn: Any, sql: str) -> tuple[Any, ...] | None:
        # As the sync adapter: autocommit for the query while idle, so none is left open.
        idle = not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
        if idle:
            await conn.set_autocommit(True)
        try:
            async with conn.cursor(row_factory=tuple_row) as cursor:
                await cursor.execute(sql)
                row: tuple[Any, ...] | None = await cursor.fetchone()
        finally:
            if idle:
                await conn.set_autocommit(False)
        return row

    async def close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            await conn.close()
