"""The public operations of a test cluster: start and stop, faults, promote, heal, clients.

The harness keeps its own belief of the topology (``TestNode.role``, each replica's upstream,
its replication delay) and makes the servers match it; ``heal()`` puts servers and proxies back
to that belief, or rebuilds the original shape when a promote changed it. Every operation takes
the cluster's lock, then runs the steps of :mod:`clusterdb.testing.servers`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clusterdb.testing import cleanup
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.node import TestNode
from clusterdb.testing.ports import HOST, free_port
from clusterdb.testing.proxy import Proxy
from clusterdb.testing.servers import Servers

# TestNode is re-exported: tests import it from here.
__all__ = ["Cluster", "TestNode"]


class Cluster(Servers, cleanup.StartStop):
    """A primary and ``replicas`` replicas on loopback, each behind a :class:`Proxy`.

    ``user``/``password``/``dbname`` are the application's account, ``admin_user``/
    ``admin_password`` the superuser's; the server kind's template holds both.
    """

    def __init__(self, replicas: int = 2) -> None:
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        accounts = self._data_template
        self.user = accounts.app_user
        self.password = accounts.app_password
        self.dbname = accounts.dbname
        self.admin_user = accounts.admin_user
        self.admin_password = accounts.admin_password
        self.replica_count = replicas
        self.nodes: list[TestNode] = []
        self.base_dir: Path | None = None
        self._lock = threading.RLock()
        self._started = False
        self._topology_changed = False

    def __repr__(self) -> str:
        state = "started" if self._started else "not started"
        return f"{type(self).__name__}(replicas={self.replica_count}, {state}, nodes={self.nodes})"

    # Topology

    @property
    def primary(self) -> TestNode:
        """The node the harness believes is primary (changes after :meth:`promote`)."""
        for node in self.nodes:
            if node.role == "primary":
                return node
        raise HarnessError("the cluster has no primary (not started?)")

    @property
    def replicas(self) -> list[TestNode]:
        return [n for n in self.nodes if n.role == "replica"]

    def node(self, name: str) -> TestNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    # Lifecycle

    def start(self) -> None:
        """Create the nodes from the template, start them, wait until replication streams."""
        with self._lock:
            if self._started:
                return
            self._check_binaries()
            template = self._template()
            cleanup.register(self)
            self._started = True
            try:
                self.base_dir = cleanup.make_tempdir(self._kind)
                self._own_dir(self.base_dir)
                for i in range(self.replica_count + 1):
                    port = free_port()
                    node = TestNode(self, i, f"{self._prefix}{i}", port, Proxy(HOST, port))
                    node.dir = self.base_dir / node.name
                    self.nodes.append(node)
                self._build(template)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Kill every server, close every proxy, remove every directory (idempotent)."""
        with self._lock:
            self._emergency_stop()

    def _emergency_stop(self) -> None:
        # Lock-free: also called from atexit and signal handlers. The data is being thrown
        # away, so SIGKILL is as good as a clean shutdown and cannot hang.
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self._kill(node)
            node.proxy.close()
        if self.base_dir is not None:
            cleanup.remove_tempdir(self.base_dir)
            self.base_dir = None
        self.nodes = []
        self._started = False
        cleanup.unregister(self)

    def recreate(self) -> None:
        """Throw all data away and start the original shape afresh from the template, keeping
        ports and proxies (what the fixtures fall back to when :meth:`heal` fails)."""
        with self._lock:
            self._require_started()
            for node in self.nodes:
                self._kill(node)
                node.proxy.reset()
            self._build(self._template())

    def heal(self) -> None:
        """Back to healthy: every node running and resumed, proxies passing with no delay, no
        replication delay. After a promote, rebuild the original shape (node 0 primary) from
        the current primary's data. Cheap when nothing was broken."""
        with self._lock:
            self._require_started()
            for node in self.nodes:
                node.proxy.reset()
            if self._topology_changed or self.nodes[0].role != "primary":
                self._rebuild()
                return
            changed = False
            for node in self.nodes:
                if node.hung:
                    self._resume(node)
                    changed = True
            down = [n for n in self.nodes if not n.running]
            if down:
                self._start_nodes(down)
                changed = True
            for node in self.replicas:
                if node.delay:
                    self._set_delay(node, 0.0)
                    changed = True
            if changed:
                self._wait_streaming(timeout=30.0)

    # Faults on one node (TestNode's methods call these)

    def kill_node(self, node: TestNode) -> None:
        """SIGKILL the server and all its processes; its port refuses afterwards."""
        with self._lock:
            self._kill(node)

    def stop_node(self, node: TestNode) -> None:
        """Clean (fast) shutdown; a hung node is resumed first."""
        with self._lock:
            self._stop_clean(node)

    def start_node(self, node: TestNode) -> None:
        """Start the server with its current role; returns once it accepts connections."""
        with self._lock:
            self._start_nodes([node])

    def restart_node(self, node: TestNode) -> None:
        """Clean stop, then start."""
        with self._lock:
            self._stop_clean(node)
            self._start_nodes([node])

    def hang_node(self, node: TestNode) -> None:
        """SIGSTOP every process of the node: TCP connects still complete, nothing answers."""
        with self._lock:
            if node.proc is None or not node.running:
                raise HarnessError(f"{node.name} is not running: nothing to hang")
            node.proc.stop_tree()
            node.hung = True

    def resume_node(self, node: TestNode) -> None:
        """SIGCONT every process of the node (the process list is read again)."""
        with self._lock:
            self._resume(node)

    # Topology changes

    def promote(self, node: TestNode) -> None:
        """Promote ``node``; the other replicas follow it.

        The old primary, if running, is stopped cleanly first (fenced, so there are never two
        primaries) and becomes a stopped replica of the new primary; ``heal()`` brings back
        the original shape.
        """
        with self._lock:
            self._require_started()
            if node.role != "replica":
                raise HarnessError(f"{node.name} is not a replica")
            if not node.running:
                raise HarnessError(f"{node.name} is not running: start it before promoting it")
            if node.hung:
                self._resume(node)
            old = self.primary
            self._fence(old)
            self._topology_changed = True
            self._promote(node)
            old.role = "replica"
            node.role = "primary"
            node.upstream = None
            node.delay = 0.0
            for other in self.nodes:
                if other is not node:
                    other.upstream = node
            self._prepare(old)
            followers = [n for n in self.replicas if n.running and n is not old]
            for other in followers:
                if other.hung:
                    self._resume(other)
                self._repoint(other)
            self._wait_streaming(timeout=30.0)

    def set_replication_delay(self, node: TestNode, seconds: float) -> None:
        """Delay applying changes on replica ``node`` by ``seconds`` (0 removes the delay)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            if node.role != "replica":
                raise HarnessError(f"{node.name} is not a replica")
            self._set_delay(node, float(seconds))

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Block until every running, non-hung replica has replayed all the primary has."""
        with self._lock:
            self._require_started()
            deadline = time.monotonic() + timeout
            replicas = [n for n in self.replicas if n.running and not n.hung]
            if replicas:
                self._wait_caught_up(replicas, deadline)

    # Client helpers

    def connect_kwargs(
        self, node: TestNode, via_proxy: bool = True, admin: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments for the driver's ``connect()`` reaching ``node``."""
        user, password = (
            (self.admin_user, self.admin_password) if admin else (self.user, self.password)
        )
        return {
            "host": node.host,
            "port": node.proxy_port if via_proxy else node.port,
            "user": user,
            "password": password,
            self._dbname_key: self.dbname,
        }

    def node_specs(self, via_proxy: bool = True) -> list[dict[str, Any]]:
        """``[{"name", "host", "port"}, ...]`` for every node, primary first at start."""
        return [
            {"name": n.name, "host": n.host, "port": n.proxy_port if via_proxy else n.port}
            for n in self.nodes
        ]

    def register_kwargs(self, via_proxy: bool = True) -> dict[str, Any]:
        """Everything ``clusterdb.register(name, **kwargs)`` needs to reach this cluster as
        the application user: driver, nodes (through their proxies by default), user,
        password and database. Add clusterdb options (``connect_timeout``...) beside it."""
        return {
            "driver": self.driver,
            "nodes": self.node_specs(via_proxy),
            "user": self.user,
            "password": self.password,
            self._dbname_key: self.dbname,
        }

    def execute(
        self, node: TestNode, sql: str, params: Sequence[Any] | None = None, admin: bool = True
    ) -> list[tuple[Any, ...]]:
        """Run one statement on ``node`` directly (not through its proxy), in autocommit mode;
        the rows, or ``[]`` for a statement returning none."""
        with contextlib.closing(self._connect(node, admin=admin)) as conn:
            cur = conn.cursor()
            cur.execute(sql, params)
            if cur.description is None:
                return []
            return [tuple(row) for row in cur.fetchall()]
