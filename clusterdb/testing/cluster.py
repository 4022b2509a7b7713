"""What a PostgreSQL and a MariaDB test cluster have in common: nodes, proxies, faults, heal.

The harness keeps its own belief of the topology (``TestNode.role``, each replica's upstream,
its replication delay) and makes the servers match it; ``heal()`` puts servers and proxies back
to that belief, or rebuilds the original shape when a promote changed it.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from clusterdb.testing import cleanup
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST, free_port
from clusterdb.testing.process import ServerProcess
from clusterdb.testing.proxy import Proxy

Role = Literal["primary", "replica"]


class TestNode:
    """One server of a test cluster, with its own fixed proxy in front of it."""

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
        # Harness state the server is made to match.
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
        with self.cluster._lock:
            self.cluster._kill(self)

    def stop(self) -> None:
        """Clean (fast) shutdown; a hung node is resumed first."""
        with self.cluster._lock:
            self.cluster._stop_clean(self)

    def start(self) -> None:
        """Start the server with its current role; returns once it accepts connections."""
        with self.cluster._lock:
            self.cluster._start_nodes([self])

    def restart(self) -> None:
        """Clean stop, then start."""
        with self.cluster._lock:
            self.cluster._stop_clean(self)
            self.cluster._start_nodes([self])

    def hang(self) -> None:
        """SIGSTOP every process of the node: TCP connects still complete, nothing answers."""
        with self.cluster._lock:
            if not self.running:
                raise HarnessError(f"{self.name} is not running: nothing to hang")
            assert self.proc is not None
            self.proc.stop_tree()
            self.hung = True

    def resume(self) -> None:
        """SIGCONT every process of the node (the process list is read again)."""
        with self.cluster._lock:
            self.cluster._resume(self)


class Cluster(abc.ABC):
    """A primary and ``replicas`` replicas on loopback, each behind a :class:`Proxy`."""

    driver: ClassVar[str]
    WHOAMI_SQL: ClassVar[str]
    _prefix: ClassVar[str]
    _kind: ClassVar[str]

    user: str
    password: str
    dbname: str
    admin_user: str
    admin_password: str

    def __init__(self, replicas: int = 2) -> None:
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        self.replica_count = replicas
        self.nodes: list[TestNode] = []
        self.base_dir: Path | None = None
        self._lock = threading.RLock()
        self._started = False
        self._topology_changed = False

    def __repr__(self) -> str:
        state = "started" if self._started else "not started"
        return f"{type(self).__name__}(replicas={self.replica_count}, {state}, nodes={self.nodes})"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
                node.role = "primary" if node.index == 0 else "replica"
                node.upstream = None
                node.delay = 0.0
            self._topology_changed = False
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

    # Faults and topology changes

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
            self._demoted(old)
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

    # Shared machinery

    _dbname_key: ClassVar[str]

    def _require_started(self) -> None:
        if not self._started:
            raise HarnessError(f"{type(self).__name__} is not started: call start() first")

    def _kill(self, node: TestNode) -> None:
        if node.proc is not None:
            node.proc.kill_tree()
            node.proc = None
        node.hung = False

    def _resume(self, node: TestNode) -> None:
        if node.proc is not None:
            node.proc.continue_tree()
        node.hung = False

    def _start_nodes(self, nodes: Sequence[TestNode]) -> None:
        """Spawn every node not running, then wait for each (they start in parallel)."""
        self._require_started()
        todo = [n for n in nodes if not n.running]
        for node in todo:
            node.proc = self._spawn(node)
            node.hung = False
        for node in todo:
            self._wait_ready(node, timeout=60.0)
        for node in todo:
            self._after_start(node)

    def _wait_for(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        """Poll ``check`` until it is true, raising a HarnessError naming ``what`` at timeout."""
        deadline = time.monotonic() + timeout
        delay = 0.005
        last: Exception | None = None
        while True:
            try:
                if check():
                    return
            except HarnessError:
                raise
            except Exception as exc:  # driver errors while the server settles
                last = exc
            if time.monotonic() > deadline:
                detail = f" (last error: {type(last).__name__}: {last})" if last else ""
                raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def _check_alive(self, node: TestNode) -> None:
        if node.proc is None or not node.proc.alive:
            tail = node.proc.log_tail() if node.proc is not None else ""
            code = node.proc.returncode if node.proc is not None else None
            raise HarnessError(
                f"{node.name} exited (status {code}) while starting; log {node.dir}.log:\n{tail}"
            )

    # Server-specific parts

    @abc.abstractmethod
    def _check_binaries(self) -> None: ...

    @abc.abstractmethod
    def _template(self) -> Path:
        """Path of the per-process template data dir (created on first use)."""

    @abc.abstractmethod
    def _own_dir(self, path: Path) -> None:
        """Make ``path`` usable by the server's OS user."""

    @abc.abstractmethod
    def _build(self, template: Path) -> None:
        """Create every node's data dir from ``template`` and start the original shape."""

    @abc.abstractmethod
    def _rebuild(self) -> None:
        """Restore the original shape from the current primary's data."""

    @abc.abstractmethod
    def _spawn(self, node: TestNode) -> ServerProcess: ...

    @abc.abstractmethod
    def _wait_ready(self, node: TestNode, timeout: float) -> None: ...

    @abc.abstractmethod
    def _after_start(self, node: TestNode) -> None:
        """Per-start setup once the server accepts connections (MariaDB: replication)."""

    @abc.abstractmethod
    def _stop_clean(self, node: TestNode) -> None: ...

    @abc.abstractmethod
    def _connect(self, node: TestNode, admin: bool) -> Any:
        """A DB-API connection straight to the node's port, autocommit."""

    @abc.abstractmethod
    def _fence(self, old: TestNode) -> None:
        """Make sure the old primary takes no more writes before a promote."""

    @abc.abstractmethod
    def _promote(self, node: TestNode) -> None: ...

    @abc.abstractmethod
    def _demoted(self, old: TestNode) -> None:
        """Configure the (stopped) old primary to start as a replica of its upstream."""

    @abc.abstractmethod
    def _repoint(self, node: TestNode) -> None:
        """Make the running replica ``node`` follow ``node.upstream``."""

    @abc.abstractmethod
    def _set_delay(self, node: TestNode, seconds: float) -> None: ...

    @abc.abstractmethod
    def _wait_streaming(self, timeout: float) -> None:
        """Wait until every running replica is connected to its upstream."""

    @abc.abstractmethod
    def _wait_caught_up(self, replicas: list[TestNode], deadline: float) -> None: ...
