"""How the harness drives a cluster's servers: the hooks a server kind (PostgreSQL, MariaDB)
implements, and the steps shared by both kinds built on them.

Every method here runs with the cluster's lock held; :class:`~clusterdb.testing.cluster.Cluster`
(the public operations) takes it.
"""

from __future__ import annotations

import abc
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clusterdb.testing.errors import HarnessError
from clusterdb.testing.process import ServerProcess, run
from clusterdb.testing.template import DataTemplate

if TYPE_CHECKING:
    from clusterdb.testing.node import TestNode

__all__ = ["Servers"]


class Servers(abc.ABC):
    """The per-kind class attributes and hooks (abstract), and the shared steps."""

    driver: ClassVar[str]
    """The clusterdb driver name for :meth:`Cluster.register_kwargs`."""
    WHOAMI_SQL: ClassVar[str]
    """A query every node answers with its own name."""
    _prefix: ClassVar[str]
    """Node names are the prefix and the index: ``pg0``, ``mdb1``."""
    _kind: ClassVar[str]
    """Names the temporary directory."""
    _dbname_key: ClassVar[str]
    """The driver's keyword for the database."""
    _data_template: ClassVar[DataTemplate]
    _shutdown: ClassVar[tuple[tuple[signal.Signals, float], ...]]
    """A clean stop: each signal, then how long to wait for the exit; SIGKILL after the last."""

    nodes: list[TestNode]
    _started: bool
    _topology_changed: bool

    @property
    @abc.abstractmethod
    def primary(self) -> TestNode:
        """The node the harness believes is primary."""

    # The shared steps, built on the hooks

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

    def _stop_clean(self, node: TestNode) -> None:
        proc = node.proc
        if proc is None:
            return
        for sig, patience in self._shutdown:
            proc.signal(sig)
            if node.hung:
                proc.continue_tree()
                node.hung = False
            if proc.wait(patience):
                break
        else:
            proc.kill_tree()
        node.proc = None
        node.hung = False

    def _copy(self, src: Path, nodes: Sequence[TestNode]) -> None:
        """Replace each node's data dir by a copy of ``src``."""
        for node in nodes:
            shutil.rmtree(node.dir, ignore_errors=True)
            # cp -a keeps the owner (the server's OS user when we are root), and is much
            # faster than copytree.
            run(["cp", "-a", str(src), str(node.dir)], what=f"copying data dir to {node.name}")

    def _build(self, template: Path) -> None:
        """Every node's data dir afresh from ``template``, then the original shape."""
        self._copy(template, self.nodes)
        self._start_original_shape()

    def _rebuild(self) -> None:
        """The original shape from the current primary's data (after a promote)."""
        for node in self.nodes:
            if node.hung:
                self._resume(node)
        src = self.primary
        if not src.running:
            self._start_nodes([src])  # crash recovery, so that a clean shutdown follows
        for node in self.nodes:
            if node is not src:
                self._kill(node)
        self._stop_clean(src)
        # Clean shutdown: every copy starts at the same checkpoint, on the same timeline.
        self._copy(src.dir, [n for n in self.nodes if n is not src])
        self._start_original_shape()

    def _start_original_shape(self) -> None:
        """Node 0 primary, the others its replicas with no delay; start all, wait for streams."""
        primary = self.nodes[0]
        for node in self.nodes:
            node.delay = 0.0
            node.role = "primary" if node is primary else "replica"
            node.upstream = None if node is primary else primary
            self._prepare(node)
        self._topology_changed = False
        self._start_nodes(self.nodes)
        self._wait_streaming(timeout=30.0)

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

    def _check_alive(self, node: TestNode) -> None:
        if node.proc is None or not node.proc.alive:
            tail = node.proc.log_tail() if node.proc is not None else ""
            code = node.proc.returncode if node.proc is not None else None
            raise HarnessError(
                f"{node.name} exited (status {code}) while starting; log {node.dir}.log:\n{tail}"
            )

    # The hooks each server kind implements

    @abc.abstractmethod
    def _check_binaries(self) -> None:
        """Find the server binaries or raise a HarnessError saying how to install them."""

    @abc.abstractmethod
    def _template(self) -> Path:
        """Path of the per-process template data dir (created on first use)."""

    @abc.abstractmethod
    def _own_dir(self, path: Path) -> None:
        """Make ``path`` usable by the server's OS user."""

    @abc.abstractmethod
    def _prepare(self, node: TestNode) -> None:
        """Set up the stopped node's data dir to start in ``node.role``."""

    @abc.abstractmethod
    def _spawn(self, node: TestNode) -> ServerProcess: ...

    @abc.abstractmethod
    def _wait_ready(self, node: TestNode, timeout: float) -> None: ...

    @abc.abstractmethod
    def _after_start(self, node: TestNode) -> None:
        """Per-start setup once the server accepts connections (MariaDB: replication)."""

    @abc.abstractmethod
    def _connect(self, node: TestNode, admin: bool) -> Any:
        """A DB-API connection straight to the node's port, autocommit."""

    @abc.abstractmethod
    def _fence(self, old: TestNode) -> None:
        """Make sure the old primary takes no more writes before a promote."""

    @abc.abstractmethod
    def _promote(self, node: TestNode) -> None: ...

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
