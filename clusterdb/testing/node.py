"""One server of a test cluster, behind its own proxy; its faults are the cluster's methods."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

from clusterdb.testing.ports import HOST
from clusterdb.testing.process import ServerProcess
from clusterdb.testing.proxy import Proxy

__all__ = ["Role", "TestNode"]

Role = Literal["primary", "replica"]


class Cluster(Protocol):
    """What a node needs of its harness cluster (its faults, done under the cluster's lock)."""

    def kill_node(self, node: TestNode) -> None: ...
    def stop_node(self, node: TestNode) -> None: ...
    def start_node(self, node: TestNode) -> None: ...
    def restart_node(self, node: TestNode) -> None: ...
    def hang_node(self, node: TestNode) -> None: ...
    def resume_node(self, node: TestNode) -> None: ...


class TestNode:
    """One server of a test cluster, with its own fixed proxy in front of it.

    ``role``, ``upstream`` and ``delay`` are the harness's belief, which the servers are made
    to match. The fault methods delegate to the cluster, which holds the lock.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, cluster: Cluster, index: int, name: str, port: int, proxy: Proxy) -> None:
        self.cluster = cluster
        self.index = index
        self.name = name
        self.host = HOST
        self.port = port
        self.proxy = proxy
        self.role: Role = "primary" if index == 0 else "replica"
        self.dir: Path = Path()
        self.upstream: TestNode | None = None
        self.delay = 0.0
        self.proc: ServerProcess | None = None
        self.hung = False

    def __repr__(self) -> str:
        return (
            f"TestNode({self.name!r}, role={self.role!r}, port={self.port}, "
            f"proxy_port={self.proxy_port}, running={self.running}, hung={self.hung})"
        )

    @property
    def proxy_port(self) -> int:
        return self.proxy.port

    @property
    def running(self) -> bool:
        """True while the server process exists (a hung server is running)."""
        return self.proc is not None and self.proc.alive

    def kill(self) -> None:
        """SIGKILL the server and all its processes; its port refuses afterwards."""
        self.cluster.kill_node(self)

    def stop(self) -> None:
        """Clean (fast) shutdown; a hung node is resumed first."""
        self.cluster.stop_node(self)

    def start(self) -> None:
        """Start the server with its current role; returns once it accepts connections."""
        self.cluster.start_node(self)

    def restart(self) -> None:
        """Clean stop, then start."""
        self.cluster.restart_node(self)

    def hang(self) -> None:
        """SIGSTOP every process of the node: TCP connects still complete, nothing answers."""
        self.cluster.hang_node(self)

    def resume(self) -> None:
        """SIGCONT every process of the node (the process list is read again)."""
        self.cluster.resume_node(self)
