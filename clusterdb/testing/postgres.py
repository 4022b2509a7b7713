"""PostgreSQL primary + streaming replicas from the system's server binaries.

Every node is a copy of one template made by ``initdb`` once per process and shut down
cleanly, so replicas need no ``pg_basebackup``: a standby started from a copy of a cleanly shut
down primary streams from it at once. Node identity and port are given on the command line;
``primary_conninfo`` and ``recovery_min_apply_delay`` live in ``postgresql.auto.conf``, which
the harness rewrites and reloads (SIGHUP) to match its own state.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from clusterdb.testing import cleanup
from clusterdb.testing.cluster import Cluster, TestNode
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST
from clusterdb.testing.process import ServerProcess, run

if TYPE_CHECKING:
    import psycopg

BINDIR_ENV = "CLUSTERDB_PG_BINDIR"
INSTALL_HINT = (
    "install them with `sudo apt-get install -y postgresql` (or run `make servers`), "
    f"or point ${BINDIR_ENV} at the directory holding initdb and postgres"
)
_OS_USER = "postgres"
_IPC_RMID = 0
_ADMIN = "postgres"
_APP = "clusterdb"
_DB = "clusterdb"

# fsync/full_page_writes off: the data is thrown away. synchronous_commit stays on: off made
# a write take ~200 ms to become visible on a replica instead of ~0.3 ms.
_CONF = """
# clusterdb.testing
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 200
shared_buffers = 32MB
fsync = off
full_page_writes = off
wal_level = replica
max_wal_senders = 20
wal_keep_size = 128MB
hot_standby = on
hot_standby_feedback = on
wal_retrieve_retry_interval = 100ms
wal_receiver_status_interval = 1s
autovacuum = off
# mmap keeps dynamic shared memory inside the data dir: with the default (posix) every killed
# server leaves files behind in /dev/shm.
dynamic_shared_memory_type = mmap
jit = off
logging_collector = off
log_min_messages = warning
"""

_HBA = """
# clusterdb.testing: password (SCRAM) for everyone, over TCP on loopback only
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
"""


def find_bindir() -> Path:
    """The directory with initdb and postgres: ${BINDIR_ENV}, the newest
    /usr/lib/postgresql/*/bin, or PATH."""
    candidates: list[Path] = []
    if os.environ.get(BINDIR_ENV):
        candidates.append(Path(os.environ[BINDIR_ENV]))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates.extend(Path(p) for p in reversed(versions))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres")):
            return bindir
    raise HarnessError(
        "PostgreSQL server binaries (initdb, postgres) not found in "
        f"/usr/lib/postgresql/*/bin or on PATH: {INSTALL_HINT}"
    )


def _os_user() -> str | None:
    """Who runs initdb and postgres: they refuse to run as root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_OS_USER)
    except KeyError:
        raise HarnessError(
            f"running as root, PostgreSQL must run as the {_OS_USER!r} OS user, which does not "
            "exist: install the postgresql package (it creates it) or run as a normal user"
        ) from None
    return _OS_USER


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


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


class _Template:
    """The per-process template data dir and the passwords baked into it."""

    _lock = threading.Lock()
    path: Path | None = None
    admin_password = secrets.token_hex(12)
    app_password = secrets.token_hex(12)

    @classmethod
    def get(cls, bindir: Path) -> Path:
        with cls._lock:
            if cls.path is None or not cls.path.exists():
                cls.path = cls._create(bindir)
            return cls.path

    @classmethod
    def _create(cls, bindir: Path) -> Path:
        user = _os_user()
        base = cleanup.make_tempdir("pg-template")
        _chown(base, user)
        data = base / "data"
        run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                _ADMIN,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--wal-segsize=1",
            ],
            user=user,
            what="initdb (template)",
        )
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(_CONF)
        (data / "pg_hba.conf").write_text(_HBA)
        # Default privileges in template1 are copied into the new database, so tables the
        # admin creates there are usable by the application user.
        sql = "\n".join(
            [
                f"ALTER ROLE {_ADMIN} PASSWORD '{cls.admin_password}';",
                f"CREATE ROLE {_APP} LOGIN PASSWORD '{cls.app_password}';",
                f"GRANT pg_monitor TO {_APP};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ADMIN} GRANT ALL ON TABLES TO {_APP};",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ADMIN} GRANT ALL ON SEQUENCES TO {_APP};",
                f"CREATE DATABASE {_DB} OWNER {_APP};",
                "",
            ]
        )
        run(
            [
                str(bindir / "postgres"),
                "--single",
                "-D",
                str(data),
                "-c",
                "exit_on_error=on",
                "template1",  # the database to connect to
            ],
            user=user,
            input=sql.encode(),
            what="postgres --single (template setup)",
        )
        return data


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

    def __init__(self, replicas: int = 2) -> None:
        super().__init__(replicas)
        self.user = _APP
        self.password = _Template.app_password
        self.dbname = _DB
        self.admin_user = _ADMIN
        self.admin_password = _Template.admin_password
        self._bindir: Path | None = None
        self._os_user: str | None = None

    def _check_binaries(self) -> None:
        self._bindir = find_bindir()
        self._os_user = _os_user()

    def _template(self) -> Path:
        assert self._bindir is not None
        return _Template.get(self._bindir)

    def _own_dir(self, path: Path) -> None:
        _chown(path, self._os_user)

    def _copy(self, src: Path, nodes: list[TestNode]) -> None:
        for node in nodes:
            shutil.rmtree(node.dir, ignore_errors=True)
        # cp -a keeps the owner (postgres) when we are root and is much faster than copytree.
        for node in nodes:
            run(["cp", "-a", str(src), str(node.dir)], what=f"copying data dir to {node.name}")

    def _build(self, template: Path) -> None:
        self._copy(template, self.nodes)
        primary = self.nodes[0]
        for node in self.nodes[1:]:
            node.upstream = primary
            self._write(node, "standby.signal", "")
        self._start_nodes(self.nodes)
        self._wait_streaming(timeout=30.0)

    def _rebuild(self) -> None:
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
        primary = self.nodes[0]
        for node in self.nodes:
            node.delay = 0.0
            node.role = "primary" if node is primary else "replica"
            node.upstream = None if node is primary else primary
            signal_file = node.dir / "standby.signal"
            if node is primary:
                signal_file.unlink(missing_ok=True)
            else:
                self._write(node, "standby.signal", "")
        self._topology_changed = False
        self._start_nodes(self.nodes)
        self._wait_streaming(timeout=30.0)

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

        self._wait_for(f"{node.name} to accept connections", ready, timeout)

    def _after_start(self, node: TestNode) -> None:
        pass

    def _kill(self, node: TestNode) -> None:
        super()._kill(node)
        release_sysv_segment(node.dir)

    def _stop_clean(self, node: TestNode) -> None:
        proc = node.proc
        if proc is None:
            return
        # SIGINT is a fast shutdown; SIGTERM (smart) would wait for every client to leave.
        proc.signal(signal.SIGINT)
        if node.hung:
            proc.continue_tree()
        if not proc.wait(30.0):
            proc.signal(signal.SIGQUIT)
            if not proc.wait(5.0):
                proc.kill_tree()
        node.proc = None
        node.hung = False

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

    def _demoted(self, old: TestNode) -> None:
        self._write(old, "standby.signal", "")

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

            self._wait_for(f"{node.name} to reload recovery_min_apply_delay", applied, 10.0)

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

        self._wait_for(
            f"replicas {sorted(expected)} to stream from {primary.name}", streaming, timeout
        )

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
            self._wait_for(f"{node.name} to replay up to {target}", caught_up, remaining)
