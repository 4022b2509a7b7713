"""The test proxy against a tiny local echo server: delay, deaf, refuse, close."""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest

from clusterdb.testing import Proxy


class EchoServer:
    """Echoes every byte back; counts the bytes it received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    with self._lock:
                        self.received += len(data)
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        # shutdown() wakes the thread blocked in accept(); close() alone would not.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[Proxy]:
    with Proxy("127.0.0.1", echo.port) as p:
        yield p


def connect(proxy: Proxy, timeout: float = 2.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def median_round_trip(sock: socket.socket, n: int = 20) -> float:
    times = []
    for i in range(n):
        msg = f"ping {i}".encode()
        started = time.perf_counter()
        sock.sendall(msg)
        assert recv_exactly(sock, len(msg)) == msg
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_forwards_both_ways(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
        big = bytes(range(256)) * 4096  # 1 MiB, checks ordering under flow control
        sender = threading.Thread(target=sock.sendall, args=(big,))
        sender.start()
        assert recv_exactly(sock, len(big)) == big
        sender.join()


def test_delay_applies_to_each_direction_and_changes_while_running(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        base = median_round_trip(sock)
        proxy.set_delay(0.020)
        delayed = median_round_trip(sock)
        proxy.set_delay(0)
        back = median_round_trip(sock)
    # 20 ms each way: a round trip gains 40 ms.
    assert 0.035 <= delayed - base < 0.2, (base, delayed)
    assert back < 0.015, back


def test_delay_preserves_order_when_lowered(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        proxy.set_delay(0.1)
        sock.sendall(b"first.")
        proxy.set_delay(0)
        sock.sendall(b"second")
        assert recv_exactly(sock, 12) == b"first.second"


def test_deaf_accepts_and_never_answers_then_resumes(proxy: Proxy, echo: EchoServer) -> None:
    proxy.set_mode("deaf")
    with connect(proxy, timeout=0.5) as sock:  # the TCP connect completes
        sock.sendall(b"anyone?")
        with pytest.raises(TimeoutError):
            sock.recv(10)
        assert echo.received == 0  # nothing reached the server either
        proxy.set_mode("pass")
        sock.settimeout(2)
        assert recv_exactly(sock, 7) == b"anyone?"


def test_deaf_stalls_open_connections(proxy: Proxy) -> None:
    with connect(proxy, timeout=0.5) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        proxy.set_mode("deaf")
        sock.sendall(b"b")
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_refuse_then_pass_on_the_same_port(proxy: Proxy) -> None:
    port = proxy.port
    with connect(proxy) as open_conn:
        proxy.set_mode("refuse")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1)
        # Open connections are reset, like a server whose process died.
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            open_conn.sendall(b"x")
            if not open_conn.recv(1):
                raise ConnectionResetError
    # While refusing, the port stays ours.
    with socket.socket() as other, pytest.raises(OSError):
        other.bind(("127.0.0.1", port))
    proxy.set_mode("pass")
    assert proxy.port == port
    with connect(proxy) as sock:
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"


def test_upstream_down_resets_the_client() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, not listening: connects are refused
        port = unused.getsockname()[1]
        with (
            Proxy("127.0.0.1", port) as proxy,
            contextlib.ExitStack() as stack,
            pytest.raises(ConnectionResetError),
        ):
            # The reset may come at any step after the TCP connect completes.
            sock = stack.enter_context(connect(proxy))
            sock.sendall(b"x")
            if not sock.recv(1):
                raise ConnectionResetError


def test_close_releases_port_and_is_idempotent(echo: EchoServer) -> None:
    proxy = Proxy("127.0.0.1", echo.port)
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    proxy.close()
    proxy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=1)


def test_client_close_is_propagated(proxy: Proxy) -> None:
    for _ in range(3):
        with connect(proxy) as sock:
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
    deadline = time.monotonic() + 2
    while proxy.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.connections == 0


def test_drop_connections_resets_open_ones_only(proxy: Proxy) -> None:
    with connect(proxy) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        proxy.drop_connections()
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            sock.sendall(b"y")
            if not sock.recv(1):
                raise ConnectionResetError
    with connect(proxy) as sock:
        sock.sendall(b"z")
        assert recv_exactly(sock, 1) == b"z"


def test_set_upstream_moves_new_connections(proxy: Proxy) -> None:
    other = EchoServer()
    try:
        proxy.set_upstream("127.0.0.1", other.port)
        with connect(proxy) as sock:
            sock.sendall(b"moved")
            assert recv_exactly(sock, 5) == b"moved"
        assert other.received == 5
    finally:
        other.close()


def test_runs_in_one_daemon_thread(echo: EchoServer) -> None:
    with Proxy("127.0.0.1", echo.port), Proxy("127.0.0.1", echo.port):
        threads = [t for t in threading.enumerate() if t.name == "clusterdb-testing-proxy"]
        assert len(threads) == 1
        assert threads[0].daemon


def test_rejects_bad_arguments(proxy: Proxy) -> None:
    with pytest.raises(ValueError):
        proxy.set_mode("sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        proxy.set_delay(-1)
