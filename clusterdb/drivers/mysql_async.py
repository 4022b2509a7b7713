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
import functools
import inspect
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import pymysql
from asyncmy import cursors
from asyncmy.connection import Connection
from asyncmy.errors import OperationalError
from pymysql.constants import CR

from clusterdb.core.description import Role
from clusterdb.drivers.asyncio_base import READ, AsyncAdapter, AsyncPending, wait_ready
from clusterdb.drivers.base import ConnectArgs, needs_no_lookup, nothing
from clusterdb.drivers.mysql_bound import bound_asyncmy
from clusterdb.drivers.pymysql import IN_TRANSACTION, ROLE_SQL, _open, _silence, role_of
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


@functools.cache
def _preferred() -> tuple[Any, bool] | None:
    """PyMySQL's context for a registration without SSL settings ("preferred" TLS), made once:
    a default context loads the system's certificates (milliseconds), and it is the same for
    every such connection."""
    made = pymysql.connections.Connection(defer_connect=True)
    return (made.ctx, bool(getattr(made, "_ssl_required", False))) if made.ssl else None


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


async def _greeted(loop: asyncio.AbstractEventLoop, sock: socket.socket, patience: float) -> bool:
    """True once the server has sent something or closed the connection (asyncmy's handshake
    then says why), False when it stayed silent for ``patience`` s; OSError when the TCP
    connect of :func:`~clusterdb.drivers.pymysql._open` failed."""
    if not await wait_ready(loop, sock.fileno(), READ, patience):
        return False
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))
    return True


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
    kwargs: Mapping[str, Any], timeout: float, sock: socket.socket | None = None, made: Any = None
) -> Any:
    """asyncmy's connection for ``kwargs`` (on ``sock`` when given: the greeting is there to
    read; ``made``: its :func:`_unconnected` object, when built already), or asyncmy's error
    after ``timeout`` s. Nothing is left open when it fails or is cancelled."""
    host = kwargs.get("host") or "localhost"
    conn = _unconnected(kwargs, timeout, sock) if made is None else made
    try:
        async with asyncio.timeout(timeout):
            await conn.connect()  # closes its socket on any failure, cancellation included
    except BaseException as exc:
        conn.close()
        if sock is not None:
            sock.close()  # when asyncmy failed before taking it over
        if isinstance(exc, TimeoutError):
            raise _cannot_connect(host, TimeoutError("timed out")) from None
        if isinstance(exc, OSError):
            raise _cannot_connect(host, exc) from exc
        raise
    return conn


def _pending(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, host: str, kwargs: Mapping[str, Any]
) -> AsyncPending:
    """The attempt on ``sock``, whose server has not spoken yet, for a task to finish (made
    apart from :meth:`AsyncmyAdapter.start`: its closures would cost every connect their
    cells)."""
    handed = False  # once asyncmy has the socket, its transport closes it, not us

    async def finish(remaining: float) -> Any:
        nonlocal handed
        started = time.monotonic()
        try:
            spoke = await _greeted(loop, sock, remaining)
        except BaseException:
            sock.close()
            raise
        if not spoke:
            silence = _silence(sock)
            sock.close()
            raise _cannot_connect(host, TimeoutError(silence))
        handed = True
        return await _connected(kwargs, remaining - (time.monotonic() - started), sock)

    def cancel() -> None:
        # Called whenever the attempt's task ends, won or not: closing the socket under
        # asyncmy's live transport would leave that transport registered on a closed
        # descriptor (its connection stuck forever, and the loop refusing the next socket
        # given the same number: "File descriptor N is used by transport").
        if not handed:
            sock.close()

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
        # MySQL servers speak first: a greeting within ``patience`` tells a live server from
        # a hung one (a stopped server's kernel still completes the TCP handshake), so the
        # caller's task does the rest and no task is paid for. A server still silent is left
        # to a task, socket and all, while the race hedges. asyncmy takes the socket as it
        # is (``sock=``): TLS would then have to come first, so TLS connects begin in a task.
        kwargs = self._kwargs_for(target, overrides)
        host = str(kwargs.get("host") or "localhost")
        if kwargs.get("unix_socket") or kwargs.get("ssl") or not needs_no_lookup(host):
            return await super().start(target, overrides, timeout, patience)
        began = time.monotonic()
        port = int(kwargs.get("port") or 3306)
        try:
            sock = cast(_Socket, _open(host, port, _Socket))  # TCP_NODELAY, SO_KEEPALIVE set
        except OSError as exc:
            raise _cannot_connect(host, exc) from exc
        sock.address = f"{host}:{port}"
        loop = asyncio.get_running_loop()
        try:
            # Built and ``idle`` run while the server greets, as PyMySQL's (its own timeout is
            # the whole ``timeout``: the one _connected() sets from what is left comes first).
            made = _unconnected(kwargs, timeout, sock)
            idle()
            spoke = await _greeted(loop, sock, patience)
        except BaseException:
            sock.close()
            raise
        if spoke:
            return await _connected(kwargs, timeout - (time.monotonic() - began), sock, made)

        return _pending(loop, sock, host, kwargs)

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
