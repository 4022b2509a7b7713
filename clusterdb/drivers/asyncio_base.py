"""What clusterdb needs of an asyncio driver, for the clusters of a DB-API driver.

A cluster registered with ``driver="psycopg"`` or ``"pymysql"`` serves ``connect_async()``
through the asyncio driver of the same database (:func:`clusterdb.drivers.get_async_adapter`):
its nodes' connect arguments are the ones built at register time
(:meth:`DriverAdapter.connect_args`), so one registration serves both.
Like a :class:`~clusterdb.drivers.base.DriverAdapter`, an async adapter never wraps the
connection: the caller gets what the asyncio driver's own ``connect()`` returns.

Every coroutine here runs on the caller's event loop and may be cancelled at any await:
whatever it opened is closed before the cancellation propagates.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from clusterdb.core.causal import Kind
from clusterdb.core.description import Role
from clusterdb.drivers.base import ConnectArgs, nothing

__all__ = ["READ", "WRITE", "AsyncAdapter", "AsyncPending", "wait_ready", "wake"]


@dataclass(frozen=True, slots=True)
class AsyncPending:
    """An attempt begun by :meth:`AsyncAdapter.start` whose server has not answered yet."""

    finish: Callable[[float], Awaitable[Any]]
    """``await finish(timeout)``: complete the attempt (in a task) within ``timeout`` s."""
    cancel: Callable[[], None]
    """Drop the attempt unfinished (its socket is closed); harmless once finished."""


class AsyncAdapter(ABC):
    """One asyncio driver as clusterdb sees it."""

    name: str
    """The asyncio driver's name (``psycopg``, ``asyncmy``)."""
    operational_error: type[Exception]
    """The asyncio driver's ``OperationalError``: AllNodesFailed and NoSuitableNode are one."""
    role_is_free: bool = False
    """True when :meth:`detect_role` needs no round trip, so it runs on every connect."""

    @abstractmethod
    async def connect(
        self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float
    ) -> Any:
        """A connection to ``target`` (``overrides`` win), or the driver's own error once
        ``timeout`` s have passed; a cancelled or failed attempt leaves no socket open."""

    starts_inline: bool = False
    """True when :meth:`start` can begin an attempt in the caller's task and pause it."""

    async def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        """Begin an attempt in the caller's task: the connection, when the server answered
        within ``patience`` s (the whole handshake for psycopg, the greeting for MySQL, whose
        handshake then runs here too, bounded by ``timeout``), or an :class:`AsyncPending`
        attempt for a task to finish. ``idle``: work to do at most once while the request is
        on its way to the server. The default begins nothing."""

        async def finish(remaining: float) -> Any:
            return await self.connect(target, overrides, remaining)

        return AsyncPending(finish, nothing)

    async def detect_role(self, conn: Any) -> Role | None:
        """The node's role as seen on ``conn``, or None when the driver cannot tell; leaves
        no transaction open."""
        return None

    causal_kind: Kind | None = None
    """The kind of read-your-writes token the driver's servers give (None: no tokens)."""

    async def fetch_row(self, conn: Any, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql`` as a tuple, leaving no transaction open that was not
        open before (:meth:`DriverAdapter.fetch_row` on the loop)."""
        raise NotImplementedError(f"{self.name} gives no read-your-writes tokens")

    def bound_queries(
        self, conn: Any, bound: float, report: Callable[[Any, BaseException], object]
    ) -> bool:
        """As :meth:`DriverAdapter.bound_queries
        <clusterdb.drivers.base.DriverAdapter.bound_queries>`, for the asyncio driver's
        connection. False (the default) when the driver has no way to."""
        return False

    @abstractmethod
    async def close(self, conn: Any) -> None:
        """Close ``conn`` at once (no goodbye to the server), ignoring every error."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


READ, WRITE = 1, 2
"""Bits of :func:`wait_ready` (psycopg's ``Wait``/``Ready`` values)."""


def wake(waiter: asyncio.Future[None]) -> None:
    """Wake whoever awaits ``waiter``, unless it is done already (woken, or cancelled)."""
    if not waiter.done():
        waiter.set_result(None)


async def wait_ready(
    loop: asyncio.AbstractEventLoop, fileno: int, wait: int, timeout: float
) -> int:
    """Wait up to ``timeout`` s on ``loop`` for ``fileno`` to be ready for ``wait``
    (:data:`READ` | :data:`WRITE`): the bits that are, 0 when the time ran out. A socket
    error makes it ready for both."""
    if timeout <= 0:
        return 0
    done = loop.create_future()
    state = 0

    def wake(bits: int) -> None:
        nonlocal state
        state |= bits
        if not done.done():
            done.set_result(None)

    if wait & READ:
        loop.add_reader(fileno, wake, READ)
    if wait & WRITE:
        loop.add_writer(fileno, wake, WRITE)
    timer = loop.call_later(timeout, wake, 0)
    try:
        await done
    finally:
        timer.cancel()
        if wait & READ:
            loop.remove_reader(fileno)
        if wait & WRITE:
            loop.remove_writer(fileno)
    return state
