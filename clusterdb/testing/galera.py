"""MariaDB Galera (multi-primary) test clusters from the system's galera-4 provider.

Every node starts from the MariaDB harness's template. Node 0 bootstraps a new cluster
(``--wsrep-new-cluster``); the others join one at a time (simultaneous joins race in group
communication) and each receives a state transfer by mysqldump, the one method with no helper
process on the joiner's side, so a join is quick. Every node is writable: the harness calls
them all ``primary``.

Faults beyond the usual ones (kill, stop, hang, proxies): :meth:`GaleraCluster.isolate` /
:meth:`~GaleraCluster.rejoin` (Galera 4's ``gmcast.isolate``), :meth:`~GaleraCluster.desync`
(``wsrep_desync``) and :meth:`~GaleraCluster.state_transfer` (a full SST on demand, with the
donor held in its Donor state for as long as asked).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from clusterdb.testing import galera_server as gs
from clusterdb.testing import galera_template
from clusterdb.testing.cluster import TestNode
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.mariadb import _SERVER_OPTS, MariaDBCluster, _root_args
from clusterdb.testing.ports import HOST, free_port
from clusterdb.testing.process import ServerProcess, wait_for
from clusterdb.testing.proxy import Proxy

_JOIN_TIMEOUT = 90.0


class GaleraCluster(MariaDBCluster):
    """A Galera cluster of ``nodes`` MariaDB nodes (``gal0``, ``gal1``, ...), all primaries.

    Users, database and :attr:`WHOAMI_SQL` as in :class:`MariaDBCluster`. A node is *synced*
    when it reports ``wsrep_local_state`` 4, ``wsrep_ready`` ON and ``wsrep_cluster_status``
    Primary; every method that changes the cluster returns once the nodes it touched have
    reached the state it names.
    """

    _prefix: ClassVar[str] = "gal"
    _kind: ClassVar[str] = "galera"

    def __init__(self, nodes: int = 3) -> None:
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        super().__init__(replicas=nodes - 1)
        self._provider: Path | None = None
        self._galera_ports: dict[str, tuple[int, int]] = {}
        self._isolated: set[str] = set()
        self._desynced: set[str] = set()
        self._donor_for: dict[str, str] = {}
        self._pinned: set[str] = set()  # started with wsrep_sst_donor set
        self._sst_port: dict[str, int] = {}
        self._relays: list[Proxy] = []

    def __repr__(self) -> str:
        state = "started" if self._started else "not started"
        return f"GaleraCluster(nodes={self.replica_count + 1}, {state}, nodes={self.nodes})"

    # Galera state

    def status(self, node: TestNode) -> dict[str, str]:
        """``node``'s wsrep status: ``wsrep_local_state`` (and its comment), ``wsrep_ready``,
        ``wsrep_cluster_status`` and ``wsrep_cluster_size``, as the server reports them."""
        with contextlib.closing(self._connect(node, admin=True, timeout=2)) as conn:
            cur = conn.cursor()
            cur.execute(gs.STATUS_SQL)
            return {str(name).lower(): str(value) for name, value in cur.fetchall()}

    def is_synced(self, node: TestNode) -> bool:
        """True when ``node`` is Synced, ready and in the primary component."""
        s = self.status(node)
        return (
            s.get("wsrep_local_state") == str(gs.SYNCED)
            and s.get("wsrep_ready") == "ON"
            and s.get("wsrep_cluster_status") == "Primary"
        )

    def wait_synced(self, timeout: float = 60.0) -> None:
        """Block until every running node that is not hung, isolated or desynced is synced
        (a state transfer begun with ``wait=False`` included)."""
        with self._lock:
            self._require_started()
            self._join_all(timeout)

    # Faults

    def isolate(self, node: TestNode) -> None:
        """Cut ``node`` off from the group (``gmcast.isolate=1``: its group connections close
        and new ones are refused); returns once it has left the primary component and the
        others have formed one without it. The node keeps answering queries."""
        with self._lock:
            self._require_running(node)
            self.execute(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'")
            self._isolated.add(node.name)
            self._wait_status(
                node, "to leave the primary component", "wsrep_cluster_status", "non-Primary"
            )
            rest = [n for n in self._in_component() if n is not node]
            for other in rest:
                wait_for(
                    f"{other.name} to form a primary component without {node.name}",
                    lambda other=other: self._in_primary_of(other, len(rest)),  # type: ignore[misc]
                    timeout=30.0,
                )

    def rejoin(self, node: TestNode) -> None:
        """Undo :meth:`isolate`: returns once ``node`` is synced again (after an incremental
        or full state transfer of what it missed)."""
        with self._lock:
            self._require_running(node)
            self.execute(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
            self._isolated.discard(node.name)
            self._join(node, _JOIN_TIMEOUT)
            self._join_all(_JOIN_TIMEOUT)  # its donor too

    def desync(self, node: TestNode) -> None:
        """``SET GLOBAL wsrep_desync = ON``: ``node`` leaves flow control and reports
        Donor/Desynced while staying in the primary component (what a backup does)."""
        with self._lock:
            self._require_running(node)
            self.execute(node, "SET GLOBAL wsrep_desync = ON")
            self._desynced.add(node.name)
            self._wait_status(node, "to be desynced", "wsrep_local_state", str(gs.DONOR))

    def resync(self, node: TestNode) -> None:
        """Undo :meth:`desync`; returns once ``node`` is synced."""
        with self._lock:
            self._require_running(node)
            self.execute(node, "SET GLOBAL wsrep_desync = OFF")
            self._desynced.discard(node.name)
            self._wait_synced(node, _JOIN_TIMEOUT)

    def state_transfer(
        self,
        node: TestNode,
        donor: TestNode | None = None,
        hold: float = 0.0,
        wait: bool = True,
    ) -> TestNode:
        """A full state transfer (SST) to ``node`` now: it is stopped, its Galera state
        (grastate.dat) removed, and started again asking ``donor`` (any synced node when None)
        for a complete copy. Returns the donor once it is in its Donor state, and, with
        ``wait``, once ``node`` is synced (otherwise call :meth:`wait_synced`).

        ``hold`` (at most 8 s: the donor's mysql client gives up after 10): the donor's
        connection to ``node`` is held that long by a relay (a :class:`Proxy` in "deaf" mode),
        so the donor stays Donor/Desynced at least ``hold`` s.
        """
        if not 0 <= hold <= gs.SST_CONNECT_TIMEOUT - 2:
            raise ValueError(f"hold must be in [0, {gs.SST_CONNECT_TIMEOUT - 2:g}] s")
        with self._lock:
            self._require_started()
            donor = donor or next((n for n in self._members() if n is not node), None)
            if donor is None or donor is node:
                raise HarnessError(f"no other synced node can be a donor for {node.name}")
            self._require_running(donor)
            self._stop_clean(node)
            (node.dir / "grastate.dat").unlink(missing_ok=True)
            relay = Proxy(HOST, node.port)
            relay.set_mode("deaf" if hold else "pass")
            self._relays.append(relay)
            self._sst_port[node.name] = relay.port
            self._donor_for[node.name] = donor.name
            self._pinned.add(node.name)
            try:
                node.proc = self._spawn(node)
            finally:
                self._sst_port.pop(node.name, None)
                self._donor_for.pop(node.name, None)
            wait_for(
                f"{donor.name} to become a donor for {node.name}",
                lambda: (
                    self.status(donor).get("wsrep_local_state") == str(gs.DONOR)
                    or self.is_synced(node)
                ),
                timeout=_JOIN_TIMEOUT,
            )
            release = threading.Timer(hold, _pass, args=(relay,))
            release.daemon = True
            release.start()
            if wait:
                self._join(node, _JOIN_TIMEOUT + hold)
                self._join_all(_JOIN_TIMEOUT)
            return donor

    def heal(self) -> None:
        """Back to healthy: proxies passing, every node running, resumed, rejoined, resynced
        and synced. A cluster left with no primary component (every node isolated, or all
        down) is bootstrapped again from node 0's data."""
        with self._lock:
            self._require_started()
            for node in self.nodes:
                node.proxy.reset()
                if node.hung:
                    self._resume(node)
            self._close_relays()
            for node in [n for n in self.nodes if n.running]:
                if node.name in self._isolated:
                    self.execute(node, "SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'")
                if node.name in self._desynced:
                    self.execute(node, "SET GLOBAL wsrep_desync = OFF")
            self._isolated.clear()
            self._desynced.clear()
            self._restore_primary()
            self._start_nodes([n for n in self.nodes if not n.running])

    # Harness machinery

    def _close_relays(self) -> None:
        for relay in self._relays:
            relay.close()
        self._relays.clear()

    def _emergency_stop(self) -> None:
        self._close_relays()
        super()._emergency_stop()

    def _template(self) -> Path:
        return galera_template.get(lambda: _Seed(nodes=1))

    def _check_binaries(self) -> None:
        super()._check_binaries()
        self._provider = gs.find_provider()
        gs.find_sst_script()

    def _require_running(self, node: TestNode) -> None:
        self._require_started()
        if not node.running or node.hung:
            raise HarnessError(f"{node.name} is not running or is hung")

    def _in_component(self) -> list[TestNode]:
        """The running nodes the harness expects in the primary component."""
        return [n for n in self.nodes if n.running and not n.hung and n.name not in self._isolated]

    def _members(self) -> list[TestNode]:
        """The nodes the harness expects synced: in the component and not desynced."""
        return [n for n in self._in_component() if n.name not in self._desynced]

    def _wait_status(self, node: TestNode, what: str, name: str, value: str) -> None:
        wait_for(
            f"{node.name} {what} ({name} = {value})",
            lambda: self.status(node).get(name) == value,
            timeout=30.0,
        )

    def _in_primary_of(self, node: TestNode, size: int) -> bool:
        s = self.status(node)
        return s.get("wsrep_cluster_status") == "Primary" and s.get("wsrep_cluster_size") == str(
            size
        )

    def _wait_synced(self, node: TestNode, timeout: float) -> None:
        """Until ``node`` is synced in a component of every node expected there (a node just
        resumed reports its old view for a moment)."""

        def synced() -> bool:
            self._check_alive(node)
            size = self.status(node).get("wsrep_cluster_size")
            return self.is_synced(node) and size == str(len(self._in_component()))

        wait_for(f"{node.name} to be synced", synced, timeout)

    def _restore_primary(self) -> None:
        """Hold the lock. When running nodes remain but none is in a primary component after
        a while, make the first one bootstrap one (``pc.bootstrap``)."""
        running = [n for n in self.nodes if n.running]
        if not running:
            return

        def any_primary() -> bool:
            return any(self.status(n).get("wsrep_cluster_status") == "Primary" for n in running)

        try:
            wait_for("a primary component", any_primary, timeout=3 * gs.SUSPECT_TIMEOUT)
        except HarnessError:
            self.execute(running[0], "SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'")

    def _build(self, template: Path) -> None:
        assert self.base_dir is not None
        self._isolated.clear()
        self._desynced.clear()
        self._pinned.clear()
        for node in self.nodes:
            node.role = "primary"
            node.upstream = None
            if node.name not in self._galera_ports:
                self._galera_ports[node.name] = (free_port(), free_port())
            # Read by the donor's mysqldump script only (not on the command line).
            (self.base_dir / f"{node.name}.cnf").write_text(
                f"[mysqld]\nwsrep_sst_auth={self.admin_user}:{self.admin_password}\n"
            )
            (self.base_dir / f"{node.name}.cnf").chmod(0o600)
        self._copy(template, self.nodes)
        self._start_nodes(self.nodes)

    def _rebuild(self) -> None:
        self.recreate()

    def _start_nodes(self, nodes: Sequence[TestNode]) -> None:
        """One node after the other, each synced before the next starts; the first bootstraps
        when no other node is running."""
        self._require_started()
        for node in [n for n in nodes if not n.running]:
            node.proc = self._spawn(node)
            node.hung = False
            self._join(node, _JOIN_TIMEOUT)
        self._join_all(_JOIN_TIMEOUT)  # the donors too

    def _join_all(self, timeout: float) -> None:
        for node in self._members():
            self._join(node, timeout)

    def _join(self, node: TestNode, timeout: float) -> None:
        """Wait until ``node`` (started, or told to rejoin) is synced. A joiner aborts when its
        donor leaves the primary component mid-transfer ("Will never receive state"), which a
        loaded machine's stall can cause: it is started again, twice at most."""
        for attempt in range(3):
            try:
                self._wait_synced(node, timeout)
                break
            except HarnessError:
                if node.running or attempt == 2:
                    raise
                if node.proc is not None:
                    node.proc.wait(5.0)
                node.proc = self._spawn(node)
        if node.name in self._pinned:
            # Chosen for one transfer only: later joins may take any donor.
            self.execute(node, "SET GLOBAL wsrep_sst_donor = ''")
            self._pinned.discard(node.name)

    def _spawn(self, node: TestNode) -> ServerProcess:
        assert self.base_dir is not None and self._server is not None
        bootstrap = not any(n.running and n is not node for n in self.nodes)
        if bootstrap:
            gs.mark_safe_to_bootstrap(node.dir)
        peers = ",".join(f"{HOST}:{self._galera_ports[n.name][0]}" for n in self.nodes)
        gcomm, ist = self._galera_ports[node.name]
        donor = self._donor_for.get(node.name)
        argv = [
            str(self._server),
            f"--defaults-file={self.base_dir / (node.name + '.cnf')}",
            *_root_args(),
            *self._node_args(node),
            "--binlog-format=ROW",
            "--innodb-autoinc-lock-mode=2",
            "--max-connections=200",
            "--wsrep-on=ON",
            f"--wsrep-provider={self._provider}",
            f"--wsrep-cluster-address=gcomm://{peers}",
            f"--wsrep-node-address={HOST}:{gcomm}",
            f"--wsrep-node-name={node.name}",
            "--wsrep-sst-method=mysqldump",
            # mysqldump: where the donor's client reaches this node's SQL port.
            f"--wsrep-sst-receive-address={HOST}:{self._sst_port.get(node.name, node.port)}",
            f"--wsrep-provider-options={gs.provider_options(gcomm, ist)}",
            *([f"--wsrep-sst-donor={donor}"] if donor else []),
            *(["--wsrep-new-cluster"] if bootstrap else []),
            *_SERVER_OPTS,
        ]
        log = self.base_dir / (node.name + ".log")
        return ServerProcess(argv, log_path=log, cwd=node.dir)

    def _wait_ready(self, node: TestNode, timeout: float) -> None:
        self._wait_synced(node, timeout)

    # Replication-only operations (MariaDBCluster's others find no replica and do nothing).

    def promote(self, node: TestNode) -> None:
        raise HarnessError("every Galera node is a primary: there is nothing to promote")

    def set_replication_delay(self, node: TestNode, seconds: float) -> None:
        raise HarnessError("Galera replication is synchronous: it has no replication delay")


class _Seed(GaleraCluster):
    """The one-node cluster the Galera template is made from (itself from MariaDB's)."""

    def _template(self) -> Path:
        return MariaDBCluster._template(self)


def _pass(relay: Proxy) -> None:
    with contextlib.suppress(Exception):  # closed meanwhile (heal, stop)
        relay.set_mode("pass")
