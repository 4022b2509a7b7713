"""Free loopback ports for servers, chosen below the kernel's ephemeral range.

A server's port must stay usable while the server is stopped (restart, heal). Ports from
``bind(0)`` come from the ephemeral range, where any outgoing connection (the proxy's, a
driver's) may take one as its local port in the meantime; ports below that range are only
ever taken by an explicit bind.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"
_given: set[int] = set()
_lock = threading.Lock()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nothing listens on, never handed out twice by this process."""
    high = min(_ephemeral_low(), 65536)
    low = 20000 if high > 21000 else 1024
    with _lock:
        for _ in range(1000):
            port = random.randrange(low, high)
            if port not in _given and _bindable(port):
                _given.add(port)
                return port
    raise OSError(f"no free port found on {HOST} in [{low}, {high})")
