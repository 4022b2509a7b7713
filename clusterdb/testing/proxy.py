"""A TCP proxy in front of each node: added latency, "deaf" and "refuse" modes.

All proxies of the process share one asyncio loop in one daemon thread, so they never keep the
interpreter alive and cost one thread however many clusters run. The public methods are
thread-safe and synchronous: when ``set_mode("refuse")`` returns, the port refuses.

Delay: every chunk of bytes, in *each* direction, is forwarded ``delay`` seconds after it was
read, in order. A request/response round trip therefore gains ``2 * delay``; a connect
handshake with several round trips gains a multiple of that. A new delay applies to bytes read
after the change.

Modes:

* ``"pass"``: forward (after the delay).
* ``"deaf"``: new connections are accepted and nothing is forwarded either way, on new and
  existing connections alike; bytes are held, not dropped, so going back to ``"pass"`` resumes
  every connection like a hung server that was continued.
* ``"refuse"``: the listener is closed and every open connection is reset; connects get
  ``ConnectionRefusedError``. The port stays bound (without listening), so no one else can
  take it and ``"pass"`` listens on it again.

When the server behind the proxy is down, a client's connect completes (the proxy accepts)
and is then reset: fast, but not a refused connect. Use ``"refuse"`` for that.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

Mode = Literal["pass", "deaf", "refuse"]
_MODES = ("pass", "deaf", "refuse")
_T = TypeVar("_T")
_EOF = b""  # queued marker: half-close the destination after the bytes before it


class _Loop:
    """The process-wide proxy event loop, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None
    _pid = 0

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            # A forked child inherits the loop object but not the thread running it.
            if cls._loop is None or cls._loop.is_closed() or cls._pid != os.getpid():
                cls._pid = os.getpid()
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="clusterdb-testing-proxy", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop


def _run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T]) -> _T:
    fut: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(coro, loop)
    return fut.result(timeout=30)


def _reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with an RST, as a dead server's kernel would."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert isinstance(transport, asyncio.Transport)
    transport.abort()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection (the client's or the server's)."""

    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.transport: asyncio.Transport | None = None
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.peer: _Side | None = None
        self.eof_in = False  # the socket sent us EOF
        self.eof_out = False  # we sent the socket EOF

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.conn.closed:  # dropped (refuse, close) between accept and now
            _reset(transport)

    def data_received(self, data: bytes) -> None:
        self.conn.forward(self, data)

    def eof_received(self) -> bool:
        self.eof_in = True
        self.conn.forward(self, _EOF)
        # Keep our write half open until the peer's queued bytes and EOF are sent.
        return not self.eof_out

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost(self)

    # Flow control: a slow destination pauses reading from its source.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Conn:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.client = _Side(self)
        self.server = _Side(self)
        self.client.peer, self.server.peer = self.server, self.client
        self.connecting = False
        self.closed = False

    def start(self) -> None:
        if self.proxy._mode == "refuse" or self.proxy._closed:
            self.close(reset=True)  # accepted by the kernel just before the listener closed
        elif self.proxy._mode == "pass":
            self.connect_upstream()

    def connect_upstream(self) -> None:
        if self.connecting or self.closed:
            return
        self.connecting = True
        self.proxy._loop.create_task(self._connect())

    async def _connect(self) -> None:
        loop = self.proxy._loop
        try:
            await loop.create_connection(
                lambda: self.server, self.proxy.upstream_host, self.proxy.upstream_port
            )
        except OSError:
            # The server is down: the client gets a reset, as close as a proxy can get to
            # the refused connect it would have seen without us.
            self.close(reset=True)
            return
        if self.closed:
            _reset(self.server.transport)
            return
        self.flush(self.server)
        self.flush(self.client)

    def forward(self, src: _Side, data: bytes) -> None:
        dst = src.peer
        assert dst is not None
        loop = self.proxy._loop
        dst.queue.append((loop.time() + self.proxy._delay, data))
        self.flush(dst)

    def flush(self, dst: _Side) -> None:
        """Write every queued chunk that is due to ``dst``; re-arm a timer for the next."""
        if dst.timer is not None:
            dst.timer.cancel()
            dst.timer = None
        if self.proxy._mode != "pass" or dst.transport is None or self.closed:
            return
        loop = self.proxy._loop
        now = loop.time()
        while dst.queue:
            due, data = dst.queue[0]
            if due > now:
                dst.timer = loop.call_at(due, self.flush, dst)
                return
            dst.queue.popleft()
            if data is None:
                dst.transport.close()
                return
            if data == _EOF:
                if dst.eof_in or not dst.transport.can_write_eof():
                    dst.transport.close()
                    return
                dst.transport.write_eof()
                dst.eof_out = True
            else:
                dst.transport.write(data)

    def lost(self, side: _Side) -> None:
        peer = side.peer
        assert peer is not None
        if self.proxy._mode != "pass" or peer.transport is None or peer.transport.is_closing():
            self.close()
            return
        # The other side still gets what was queued for it, then is closed.
        peer.queue.append((self.proxy._loop.time() + self.proxy._delay, None))
        self.flush(peer)

    def close(self, reset: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy._conns.discard(self)
        for side in (self.client, self.server):
            if side.timer is not None:
                side.timer.cancel()
            if reset:
                _reset(side.transport)
            elif side.transport is not None:
                side.transport.close()


class Proxy:
    """A TCP proxy from ``127.0.0.1:port`` to ``upstream_host:upstream_port``.

    The listening port is fixed for the proxy's life; the upstream can be changed (a node
    restarted on another port keeps its proxy port).
    """

    def __init__(
        self, upstream_host: str, upstream_port: int, *, port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self._loop = _Loop.get()
        self._delay = 0.0
        self._mode: Mode = "pass"
        self._conns: set[_Conn] = set()
        self._listening = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))  # another 127.0.0.x: a distinct address (DNS tests)
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]
        self._closed = False
        _run(self._loop, self._listen())

    def __repr__(self) -> str:
        return (
            f"Proxy(port={self.port}, upstream={self.upstream_host}:{self.upstream_port}, "
            f"mode={self._mode!r}, delay={self._delay})"
        )

    @property
    def delay(self) -> float:
        """Seconds added to every chunk, in each direction."""
        return self._delay

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connections(self) -> int:
        """Number of client connections currently open through the proxy."""
        return len(self._conns)

    def set_delay(self, seconds: float) -> None:
        """Delay every chunk, in each direction, by ``seconds`` (so a round trip by twice that)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._call(self._set_delay, float(seconds))

    def set_mode(self, mode: Mode) -> None:
        """Switch to ``"pass"``, ``"deaf"`` or ``"refuse"`` (see the module docstring)."""
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, not {mode!r}")
        _run(self._loop, self._set_mode(mode))

    def set_upstream(self, host: str, port: int) -> None:
        """Forward new connections to another address; open ones are left alone."""
        self._call(self._set_upstream, host, port)

    def reset(self) -> None:
        """Back to ``"pass"`` with no delay."""
        if self._mode != "pass" or self._delay:
            self.set_delay(0.0)
            self.set_mode("pass")

    def drop_connections(self) -> None:
        """Reset every open connection (new ones are still accepted)."""
        self._call(self._drop)

    def close(self) -> None:
        """Close the listener and every connection and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
                _run(self._loop, self._close())
        self._sock.close()

    def __enter__(self) -> Proxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Everything below runs on the proxy loop.

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        async def call() -> None:
            fn(*args)

        _run(self._loop, call())

    def _set_delay(self, seconds: float) -> None:
        self._delay = seconds

    def _set_upstream(self, host: str, port: int) -> None:
        self.upstream_host, self.upstream_port = host, port

    async def _listen(self) -> None:
        # Our own accept loop rather than loop.create_server(): an asyncio Server that is
        # closed while an accepted connection is being wrapped drops that connection silently
        # instead of resetting it.
        self._sock.listen(512)
        self._loop.add_reader(self._sock.fileno(), self._on_acceptable)
        self._listening = True

    def _on_acceptable(self) -> None:
        for _ in range(64):
            try:
                sock, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self)
            self._conns.add(conn)
            self._loop.create_task(self._attach(conn, sock))

    async def _attach(self, conn: _Conn, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: conn.client, sock)
        except OSError:
            conn.close(reset=True)
            sock.close()
            return
        conn.start()

    async def _set_mode(self, mode: Mode) -> None:
        if self._closed:
            raise RuntimeError("proxy is closed")
        previous, self._mode = self._mode, mode
        if mode == "refuse":
            if previous != "refuse":
                await self._stop_listening()
            self._drop()
            return
        if previous == "refuse":
            await self._listen()
        if mode == "pass":
            for conn in list(self._conns):
                if conn.server.transport is None:
                    conn.connect_upstream()
                else:
                    conn.flush(conn.server)
                    conn.flush(conn.client)

    async def _stop_listening(self) -> None:
        if not self._listening:
            return
        self._listening = False
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()  # connections still in the accept queue get a reset
        # Keep the port by binding a fresh socket that does not listen: connects are refused
        # and nobody else can take the port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.setblocking(False)
        self._sock = sock

    def _drop(self) -> None:
        for conn in list(self._conns):
            conn.close(reset=True)

    async def _close(self) -> None:
        if self._listening:
            self._listening = False
            self._loop.remove_reader(self._sock.fileno())
        self._drop()
