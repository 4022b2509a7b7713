"""PostgreSQL primary + streaming replicas from the system's server binaries.

Every node is a copy of one template (:mod:`clusterdb.testing.postgres_template`), made by
``initdb`` once per process and shut down cleanly, so replicas need no ``pg_basebackup``: a
standby started from a copy of a cleanly shut down primary streams from it at once. Node
identity and port are given on the command line; ``primary_conninfo`` and
``recovery_min_apply_delay`` live in ``postgresql.auto.conf``, which the harness rewrites and
reloads (SIGHUP) to match its own state.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clusterdb.testing.cluster import Cluster, TestNode
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST
from clusterdb.testing.postgres_template import TEMPLATE, chown, find_bindir, os_user
from clusterdb.testing.process import ServerProcess, wait_for
from clusterdb.testing.template import DataTemplate

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresCluster", "release_sysv_segment"]

_IPC_RMID = 0


def release_sysv_segment(datadir: Path) -> None:
    """Remove the small SysV segment a killed postmaster leaves behind (named in line 7 of
    postmaster.pid); a clean shutdown or the next start would do it, a deleted data dir not."""
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        shmid = int(lines[6].split()[1])
    except (OSError, IndexError, ValueError):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmctl(shmid, _IPC_RMID, None)


def _ms(setting: str) -> int:
    """'1500ms', '2s', '0' -> milliseconds."""
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
    for unit in sorted(units, key=len, reverse=True):
        if setting.endswith(unit) and setting[: -len(unit)].isdigit():
            return int(setting[: -len(unit)]) * units[unit]
    return int(setting)


class PostgresCluster(Cluster):
    """A PostgreSQL primary with ``replicas`` streaming replicas (nodes ``pg0``, ``pg1``, ...).

    ``user``/``password``/``dbname`` are a non-superuser owning ``dbname`` (member of
    ``pg_monitor``); ``admin_user`` is the ``postgres`` superuser. Every node answers
    :attr:`WHOAMI_SQL` with its name.
    """

    driver: ClassVar[str] = "psycopg"
    WHOAMI_SQL: ClassVar[str] = "SELECT current_setting('clusterdb_test.node_name')"
    _prefix: ClassVar[str] = "pg"
    _kind: ClassVar[str] = "pg"
    _dbname_key: ClassVar[str] = "dbname"
    _data_template: ClassVar[DataTemplate] = TEMPLATE
    # SIGINT is a fast shutdown; SIGTERM (smart) would wait for every client to leave.
    _shutdown: ClassVar[tuple[tuple[signal.Signals, float], ...]] = (
        (signal.SIGINT, 30.0),
        (signal.SIGQUIT, 5.0),
    )

    def __init__(self, replicas: int = 2) -> None:
        super().__init__(replicas)
        self._bindir: Path | None = None
        self._os_user: str | None = None

    def _check_binaries(self) -> None:
        self._bindir = find_bindir()
        self._os_user = os_user()

    def _template(self) -> Path:
        assert self._bindir is not None
        return self._data_template.get(self._bindir)

    def _own_dir(self, path: Path) -> None:
        chown(path, self._os_user)

    def _prepare(self, node: TestNode) -> None:
        # A copy with standby.signal starts as a standby of primary_conninfo.
        if node.role == "replica":
            self._write(node, "standby.signal", "")
        else:
            (node.dir / "standby.signal").unlink(missing_ok=True)

    def _write(self, node: TestNode, name: str, text: str) -> None:
        """Write a file in the node's data dir atomically, owned like the data dir."""
        target = node.dir / name
        tmp = node.dir / f".{name}.tmp"
        tmp.write_text(text)
        st = node.dir.stat()
        os.chown(tmp, st.st_uid, st.st_gid)
        tmp.replace(target)

    def _write_auto_conf(self, node: TestNode) -> None:
        lines = ["# written by clusterdb.testing: the harness's state for this node"]
        if node.upstream is not None:
            conninfo = (
                f"host={HOST} port={node.upstream.port} user={self.admin_user} "
                f"password={self.admin_password} application_name={node.name}"
            )
            lines.append(f"primary_conninfo = '{conninfo}'")
        lines.append(f"recovery_min_apply_delay = '{int(node.delay * 1000)}ms'")
        self._write(node, "postgresql.auto.conf", "\n".join(lines) + "\n")

    def _spawn(self, node: TestNode) -> ServerProcess:
        assert self._bindir is not None
        self._write_auto_conf(node)
        argv = [
            str(self._bindir / "postgres"),
            "-D",
            str(node.dir),
            "-p",
            str(node.port),
            "-c",
            f"clusterdb_test.node_name={node.name}",
            "-c",
            f"cluster_name=clusterdb-{node.name}",
        ]
        log = node.dir.with_name(node.name + ".log")
        return ServerProcess(argv, log_path=log, user=self._os_user, cwd=node.dir)

    def _wait_ready(self, node: TestNode, timeout: float) -> None:
        def ready() -> bool:
            self._check_alive(node)
            with self._connect(node, admin=True, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True

        wait_for(f"{node.name} to accept connections", ready, timeout)

    def _after_start(self, node: TestNode) -> None:
        pass

    def _kill(self, node: TestNode) -> None:
        super()._kill(node)
        release_sysv_segment(node.dir)

    def _connect(
        self, node: TestNode, admin: bool, connect_timeout: int = 5
    ) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError:
            raise HarnessError(
                "the PostgreSQL harness needs psycopg: pip install 'clusterdb[psycopg]'"
            ) from None
        kwargs = self.connect_kwargs(node, via_proxy=False, admin=admin)
        return psycopg.connect(**kwargs, autocommit=True, connect_timeout=connect_timeout)

    def _fence(self, old: TestNode) -> None:
        # A fast shutdown sends the last WAL to the connected standbys before exiting, so the
        # others are not ahead of the promoted one and the old primary can follow it later.
        if old.running:
            self._stop_clean(old)

    def _promote(self, node: TestNode) -> None:
        rows = self.execute(node, "SELECT pg_promote(true, 30)")
        if not rows or rows[0][0] is not True:
            raise HarnessError(f"pg_promote() on {node.name} did not finish within 30 s")

    def switchover(self, node: TestNode) -> None:
        """Switch over to replica ``node``: the old primary is fenced (a fast shutdown sends
        its last WAL to the standbys), ``node`` promoted, and the old primary started again as a
        replica of it. ``heal()`` brings back the original shape."""
        with self._lock:
            old = self.primary
            self.promote(node)
            self._start_nodes([old])
            self._wait_streaming(timeout=30.0)

    def _repoint(self, node: TestNode) -> None:
        self._reload(node)

    def _reload(self, node: TestNode) -> None:
        self._write_auto_conf(node)
        if node.proc is not None:
            node.proc.signal(signal.SIGHUP)

    def _set_delay(self, node: TestNode, seconds: float) -> None:
        node.delay = seconds
        self._reload(node)
        if node.running and not node.hung:
            # The reload is asynchronous: make sure it happened before returning.
            want = f"{int(seconds * 1000)}ms"

            def applied() -> bool:
                rows = self.execute(node, "SHOW recovery_min_apply_delay")
                return _ms(rows[0][0]) == _ms(want)

            wait_for(f"{node.name} to reload recovery_min_apply_delay", applied, 10.0)

    def _wait_streaming(self, timeout: float) -> None:
        primary = self.primary
        if not primary.running or primary.hung:
            return
        expected = {
            n.name for n in self.replicas if n.running and not n.hung and n.upstream is primary
        }
        if not expected:
            return

        def streaming() -> bool:
            rows = self.execute(
                primary, "SELECT application_name FROM pg_stat_replication WHERE state='streaming'"
            )
            return expected <= {r[0] for r in rows}

        wait_for(f"replicas {sorted(expected)} to stream from {primary.name}", streaming, timeout)

    def _wait_caught_up(self, replicas: list[TestNode], deadline: float) -> None:
        primary = self.primary
        if not primary.running or primary.hung:
            raise HarnessError(f"the primary {primary.name} is not running or is hung")
        target = self.execute(primary, "SELECT pg_current_wal_lsn()::text")[0][0]
        for node in replicas:

            def caught_up(node: TestNode = node) -> bool:
                rows = self.execute(node, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                return rows[0][0] is True

            remaining = max(deadline - time.monotonic(), 0.0)
            wait_for(f"{node.name} to replay up to {target}", caught_up, remaining)
