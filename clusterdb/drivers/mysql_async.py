"""asyncmy connections for the clusters of the PyMySQL driver (MySQL, MariaDB).

asyncmy takes PyMySQL's connect keywords but a few: ``passwd`` and ``db`` are its
``password`` and ``database``, a PyMySQL cursor class becomes asyncmy's class of the same
name, ``write_timeout`` has nothing to bound (asyncio writes never block the caller) and is
dropped, and PyMySQL's ``ssl_*`` keywords become the SSL context PyMySQL itself would build.
TLS follows PyMySQL's rules: required when the registration asks for it (``ssl`` or
``ssl_*``), else "preferred" (PyMySQL 1.2: used when the server offers it, unless
``ssl_disabled``). asyncmy has no preferred mode of its own, so a connection then starts
without TLS and :class:`_PreferredTLS` turns it on after the server's greeting, when the
greeting offers it, with PyMySQL's own default context (no certificate check, as PyMySQL's).
Keywords with no asyncmy counterpart (``bind_address``, ``compress``...) are refused by the
first connect_async(), naming them.

Why asyncmy rather than aiomysql: ``Connection(...).connect()`` is public (clusterdb keeps the
connection object and closes it on any failure or cancellation; aiomysql's is private
``_connect()``, whose own clean-up catches ``Exception`` only and leaves a cancelled connect's
socket to the garbage collector), it takes PyMySQL's ``database`` and ``read_timeout``, and its
queries are faster; see the README.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
from collections.abc import Callable, Mapping
from typing import Any, cast

import pymysql
from asyncmy import cursors
from asyncmy.connection import Connection
from asyncmy.errors import OperationalError
from pymysql.constants import CR

from clusterdb.core.description import Role
from clusterdb.drivers.asyncio_base import AsyncAdapter, AsyncPending, wake
from clusterdb.drivers.base import ConnectArgs, needs_no_lookup, nothing
from clusterdb.drivers.mysql_bound import bound_asyncmy
from clusterdb.drivers.pymysql import IN_TRANSACTION, ROLE_SQL, _open, _silence, role_of
from clusterdb.drivers.pymysql_tls import preferred_context
from clusterdb.errors import ConfigError

__all__ = ["AsyncmyAdapter", "asyncmy_kwargs"]

_Connection: Any = Connection  # untyped in asyncmy's stubs
_ACCEPTED = frozenset(inspect.signature(Connection.__init__).parameters) - {"self"}
_RENAMED = {"passwd": "password", "db": "database", "cursorclass": "cursor_cls"}
_DROPPED = frozenset({"write_timeout"})
_SSL_KEYS = (
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl_key_password",
    "ssl_verify_cert",
    "ssl_verify_identity",
)
_PREFERRED = "_clusterdb_preferred_tls"  # the context of a preferred-TLS connect; not asyncmy's
_CLIENT_SSL = pymysql.constants.CLIENT.SSL


def _tls(kwargs: dict[str, Any]) -> tuple[Any, bool] | None:
    """Take PyMySQL's SSL keywords out of ``kwargs``: the SSL context PyMySQL would use and
    whether it requires TLS (else "preferred": TLS when the server offers it), or None (no
    TLS: ``ssl_disabled``)."""
    given = {k: kwargs.pop(k) for k in _SSL_KEYS if k in kwargs}
    ssl = kwargs.pop("ssl", None)
    if kwargs.pop("ssl_disabled", False):
        return None
    if not ssl and not any(given.values()):
        return _preferred()
    # PyMySQL's own rules decide and build the context (modes, verification, certificate).
    made = pymysql.connections.Connection(defer_connect=True, ssl=ssl, **given)
    if not made.ssl:
        return None  # no ssl module
    return made.ctx, bool(getattr(made, "_ssl_required", True))


def _preferred() -> tuple[Any, bool] | None:
    """PyMySQL's context for a registration without SSL settings ("preferred" TLS), the one
    the sync path uses too (made once per process)."""
    ctx = preferred_context()
    return None if ctx is None else (ctx, False)


class _PreferredTLS(_Connection):  # type: ignore[misc]  # untyped in asyncmy's stubs
    """asyncmy's connection with PyMySQL's "preferred" TLS: made without ``ssl``, it turns TLS
    on (asyncmy's in-protocol upgrade, as for ``ssl=``) when the server's greeting offers it.
    asyncmy's ``connect()`` reads the greeting, then calls ``_request_authentication()``."""

    _clusterdb_tls: Any = None

    async def _request_authentication(self) -> None:
        if self._clusterdb_tls is not None and self.server_capabilities & _CLIENT_SSL:
            self._ssl_context = self._clusterdb_tls
            self._client_flag |= _CLIENT_SSL
        await super()._request_authentication()


class _Socket(socket.socket):
    """A socket whose repr is its server's ``host:port``: asyncmy writes the socket it is
    given into the connection's ``host_info`` (``"socket %s"``), and a socket's own repr asks
    the kernel twice (getsockname(), getpeername(): some 4 us per connect). So ``host_info``
    reads as asyncmy writes it for a connection it opens itself: ``socket host:port``."""

    __slots__ = ("address",)

    address: str

    def __repr__(self) -> str:
        try:
            return self.address
        except AttributeError:  # not set yet
            return super().__repr__()


def _cursor_class(cls: Any) -> Any:
    if isinstance(cls, type) and issubclass(cls, cursors.Cursor):
        return cls
    found = getattr(cursors, getattr(cls, "__name__", ""), None)
    if found is None:
        raise ConfigError(f"cursorclass: asyncmy has no cursor class like {cls!r}")
    return found


def asyncmy_kwargs(pymysql_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """asyncmy's ``Connection`` keywords for PyMySQL's ``connect()`` keywords (see above);
    raises :class:`~clusterdb.errors.ConfigError` naming those asyncmy has no use for."""
    kwargs = dict(pymysql_kwargs)
    tls = _tls(kwargs)
    out: dict[str, Any] = {}
    if tls is not None:
        out["ssl" if tls[1] else _PREFERRED] = tls[0]
    refused = []
    for key, value in kwargs.items():
        name = _RENAMED.get(key, key)
        if key in _DROPPED:
            continue
        if name not in _ACCEPTED:
            refused.append(key)
        elif name == "cursor_cls":
            out[name] = _cursor_class(value)
        else:
            out[name] = value
    if refused:
        raise ConfigError(f"asyncmy does not accept {', '.join(sorted(refused))}")
    return out


def _cannot_connect(host: str, exc: BaseException) -> OperationalError:
    # asyncmy's own error for a socket failure, so callers see what asyncmy would raise.
    return OperationalError(
        CR.CR_CONN_HOST_ERROR, f"Can't connect to MySQL server on {host!r} ({exc})"
    )


def _unconnected(kwargs: Mapping[str, Any], timeout: float, sock: socket.socket | None) -> Any:
    """asyncmy's connection object for ``kwargs`` (on ``sock`` when given), not connected yet
    (nothing opened: dropping it unconnected leaves ``sock`` as it was)."""
    given = {**kwargs, "connect_timeout": max(timeout, 0.001), "sock": sock}
    preferred = given.pop(_PREFERRED, None)
    if preferred is None:
        return _Connection(**given)
    conn = _PreferredTLS(**given)
    conn._clusterdb_tls = preferred
    return conn


async def _connected(
    kwargs: Mapping[str, Any],
    timeout: float,
    sock: socket.socket | None = None,
    made: Any = None,
    waiter: asyncio.Future[None] | None = None,
) -> Any:
    """asyncmy's connection for ``kwargs`` (on ``sock`` when given, its TCP connect begun;
    ``made``: its :func:`_unconnected` object, when built already), or asyncmy's error after
    ``timeout`` s. Nothing is left open when it fails or is cancelled. ``waiter``: a future
    to wake when it ends, however (a loop turn sooner than the task's done callbacks)."""
    host = kwargs.get("host") or "localhost"
    conn = _unconnected(kwargs, timeout, sock) if made is None else made
    try:
        async with asyncio.timeout(timeout):
            await conn.connect()  # closes its socket on any failure, cancellation included
    except BaseException as exc:
        failed: BaseException = exc
        if isinstance(exc, TimeoutError):
            # asyncmy's transport closes ``sock`` on the loop's next turn: it can still say
            # what the silence was (no TCP answer, or no greeting).
            silent = "timed out"
            if sock is not None and not hasattr(conn, "server_version"):
                silent = _silence(sock)
            failed = _cannot_connect(host, TimeoutError(silent))
        elif isinstance(exc, OSError):
            failed = _cannot_connect(host, exc)
        conn.close()
        if sock is not None:
            sock.close()  # when asyncmy failed before taking it over
        if failed is exc:
            raise
        raise failed from (None if isinstance(exc, TimeoutError) else exc)
    finally:
        if waiter is not None:
            wake(waiter)
    return conn


def _drop(task: asyncio.Task[Any], sock: socket.socket) -> None:
    """Cancel the attempt, or close the connection it made that nobody will take."""
    if not task.done():
        task.cancel()
        # A task cancelled before it ran never reached _connected()'s clean-up. Closing the
        # socket once the task has ended is safe: asyncmy's transport, if it has one, is
        # closing then (its reader removed), and closing a socket twice is nothing.
        task.add_done_callback(lambda _: sock.close())
    elif not task.cancelled() and task.exception() is None:
        task.result().close()


def _pending(task: asyncio.Task[Any], sock: socket.socket) -> AsyncPending:
    """The attempt ``task``, not finished within its patience, for the race to finish (made
    apart from :meth:`AsyncmyAdapter.start`: its closures would cost every connect their
    cells). ``task`` is bounded by the connect's whole timeout."""
    taken = False

    async def finish(remaining: float) -> Any:
        nonlocal taken
        conn = await task  # cancelling the race's task cancels this one too
        taken = True
        return conn

    def cancel() -> None:
        # Called whenever the race's task ends, won or not.
        if not taken:
            _drop(task, sock)

    return AsyncPending(finish, cancel)


class AsyncmyAdapter(AsyncAdapter):
    name = "asyncmy"
    operational_error = OperationalError
    bound_queries = bound_asyncmy

    def __init__(self) -> None:
        # The translated keywords of each node (no overrides), kept with the node's target.
        self._kwargs: dict[int, tuple[ConnectArgs, dict[str, Any]]] = {}

    def _kwargs_for(self, target: ConnectArgs, overrides: Mapping[str, Any]) -> Mapping[str, Any]:
        """asyncmy's keywords for ``target`` and ``overrides``: the kept ones themselves
        when there are no overrides (read, never changed: :func:`_connected` copies)."""
        if overrides:
            return asyncmy_kwargs({**target.kwargs, **overrides})
        kept = self._kwargs.get(id(target))
        if kept is None or kept[0] is not target:
            if len(self._kwargs) > 1024:  # clusters registered again and again
                self._kwargs.clear()
            kept = self._kwargs[id(target)] = (target, asyncmy_kwargs(target.kwargs))
        return kept[1]

    async def connect(
        self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float
    ) -> Any:
        return await _connected(self._kwargs_for(target, overrides), timeout)

    starts_inline = True

    async def start(
        self,
        target: ConnectArgs,
        overrides: Mapping[str, Any],
        timeout: float,
        patience: float,
        idle: Callable[[], None] = nothing,
    ) -> Any:
        # The attempt runs in a task from the TCP connect on: one that ends within
        # ``patience`` (a live node: some 0.5 ms here) is this call's result, one still going
        # is the race's to finish while it hedges (a stopped server's kernel still completes
        # the TCP handshake; only the greeting tells). asyncmy takes the socket as it is
        # (``sock=``): TLS would then have to come first, so TLS connects begin in the race.
        kwargs = self._kwargs_for(target, overrides)
        host = str(kwargs.get("host") or "localhost")
        if kwargs.get("unix_socket") or kwargs.get("ssl") or not needs_no_lookup(host):
            return await super().start(target, overrides, timeout, patience)
        port = int(kwargs.get("port") or 3306)
        try:
            sock = cast(_Socket, _open(host, port, _Socket))  # TCP_NODELAY, SO_KEEPALIVE set
        except OSError as exc:
            raise _cannot_connect(host, exc) from exc
        sock.address = f"{host}:{port}"
        loop = asyncio.get_running_loop()
        try:
            made = _unconnected(kwargs, timeout, sock)
        except BaseException:
            sock.close()
            raise
        # asyncmy sets its transport up while the server greets: waiting for the greeting
        # first (as before 2026-12-03) put that set-up and a loop turn after it, some 85 us.
        waiter = loop.create_future()
        task = loop.create_task(_connected(kwargs, timeout, sock, made, waiter))
        try:
            idle()
            timer = loop.call_later(patience, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        except BaseException:
            _drop(task, sock)
            raise
        if task.done():
            return task.result()  # the connection, or the node's error
        return _pending(task, sock)

    async def detect_role(self, conn: Any) -> Role | None:
        # A plain cursor, no transaction left open: the connection as asyncmy would give it.
        return role_of(await self.fetch_row(conn, ROLE_SQL))

    causal_kind = "mariadb"

    async def fetch_row(self, conn: Any, sql: str) -> tuple[Any, ...] | None:
        # A plain cursor whatever the caller's cursor class (a DictCursor would give a dict).
        was_open = conn.server_status & IN_TRANSACTION
        cursor = conn.cursor(cursors.Cursor)
        try:
            await cursor.execute(sql)
            row = await cursor.fetchone()
        finally:
            await cursor.close()
        if not was_open and conn.server_status & IN_TRANSACTION:
            await conn.rollback()
        return None if row is None else tuple(row)

    async def close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()
