"""MariaDB primary + GTID replicas from the system's server binaries.

Every node is a copy of one template made by ``mariadb-install-db`` once per process. All
nodes write a binlog with ``log_slave_updates``, so any of them can be promoted and the others
can follow it by GTID. Replicas run ``read_only``; the application user lacks READ ONLY ADMIN
(which a global ``GRANT ALL`` would include), so it cannot write to them.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from clusterdb.testing import cleanup
from clusterdb.testing.cluster import Cluster, TestNode
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST
from clusterdb.testing.process import ServerProcess, run, wait_for
from clusterdb.testing.template import DataTemplate

INSTALL_HINT = (
    "install them with `sudo apt-get install -y mariadb-server` (or run `make servers`), "
    "or put mariadbd and mariadb-install-db on PATH"
)
_SEARCH = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/usr/local/mysql/bin")

# Small and fast: the data is thrown away. innodb_flush_log_at_trx_commit=2 still survives a
# SIGKILL of the server (the log is in the OS cache), which kill/restart tests rely on.
_SERVER_OPTS = [
    "--skip-name-resolve",
    "--skip-host-cache",
    "--innodb-log-file-size=16M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-method=fsync",  # tmpfs has no O_DIRECT
    "--innodb-use-native-aio=0",
    "--innodb-doublewrite=0",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-buffer-pool-load-at-startup=0",
    "--innodb-buffer-pool-dump-at-shutdown=0",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
]


def find_binaries() -> tuple[Path, Path]:
    """``(mariadbd, mariadb-install-db)`` from the usual places or PATH."""

    def find(*names: str) -> Path | None:
        for name in names:
            for d in _SEARCH:
                if os.access(Path(d) / name, os.X_OK):
                    return Path(d) / name
            found = shutil.which(name)
            if found:
                return Path(found)
        return None

    server = find("mariadbd", "mysqld")
    install = find("mariadb-install-db", "mysql_install_db")
    if server is None or install is None:
        raise HarnessError(
            f"MariaDB server binaries (mariadbd, mariadb-install-db) not found: {INSTALL_HINT}"
        )
    return server, install


def _root_args() -> list[str]:
    return ["--user=root"] if os.geteuid() == 0 else []


def _create(template: DataTemplate, install_db: Path) -> Path:
    """``mariadb-install-db`` once, with the accounts created by an extra bootstrap file."""
    admin, app, db = template.admin_user, template.app_user, template.dbname
    base = cleanup.make_tempdir("mariadb-template")
    data = base / "data"
    extra = base / "users.sql"
    # Bootstrap runs with --skip-grant-tables; FLUSH PRIVILEGES turns account management on.
    extra.write_text(
        "\n".join(
            [
                "FLUSH PRIVILEGES;",
                f"CREATE USER '{admin}'@'%' IDENTIFIED BY '{template.admin_password}';",
                f"GRANT ALL PRIVILEGES ON *.* TO '{admin}'@'%' WITH GRANT OPTION;",
                f"CREATE DATABASE {db};",
                f"CREATE USER '{app}'@'%' IDENTIFIED BY '{template.app_password}';",
                f"GRANT ALL PRIVILEGES ON {db}.* TO '{app}'@'%';",
                # To read lag (SHOW SLAVE STATUS) and GTID positions, nothing more.
                f"GRANT SLAVE MONITOR, BINLOG MONITOR ON *.* TO '{app}'@'%';",
                "",
            ]
        )
    )
    run(
        [
            str(install_db),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            f"--extra-file={extra}",
            *_root_args(),
            *_SERVER_OPTS,
        ],
        what="mariadb-install-db (template)",
    )
    return data


TEMPLATE = DataTemplate(
    _create, admin_user="clusterdb_admin", app_user="clusterdb", dbname="clusterdb"
)


class MariaDBCluster(Cluster):
    """A MariaDB primary with ``replicas`` GTID replicas (nodes ``mdb0``, ``mdb1``, ...).

    ``user``/``password``/``dbname``: all privileges on ``dbname`` plus SLAVE MONITOR and
    BINLOG MONITOR, and no READ ONLY ADMIN. ``admin_user`` has every privilege. Every node
    answers :attr:`WHOAMI_SQL` with its name (its ``report_host``). MariaDB's replication
    delay is in whole seconds: :meth:`set_replication_delay` rounds up.
    """

    driver: ClassVar[str] = "pymysql"
    WHOAMI_SQL: ClassVar[str] = "SELECT @@report_host"
    _prefix: ClassVar[str] = "mdb"
    _kind: ClassVar[str] = "mariadb"
    _dbname_key: ClassVar[str] = "database"
    _data_template: ClassVar[DataTemplate] = TEMPLATE
    # mariadbd's normal shutdown; it does not wait for clients.
    _shutdown: ClassVar[tuple[tuple[signal.Signals, float], ...]] = ((signal.SIGTERM, 30.0),)

    def __init__(self, replicas: int = 2, tls: bool = False) -> None:
        super().__init__(replicas)
        self.tls = tls
        """Servers offer TLS (a self-signed certificate made by ``openssl`` at first start);
        else they offer none (MariaDB before 11.4 makes no certificate of its own)."""
        self._server: Path | None = None
        self._install: Path | None = None
        # Replicas whose gtid_slave_pos must be set from their own binlog before following:
        # fresh copies and a demoted primary, whose slave position is stale or empty.
        self._gtid_from_binlog: set[str] = set()

    def _check_binaries(self) -> None:
        self._server, self._install = find_binaries()

    def _template(self) -> Path:
        assert self._install is not None
        return self._data_template.get(self._install)

    def _own_dir(self, path: Path) -> None:
        pass  # mariadbd runs as us (--user=root when root)

    def _prepare(self, node: TestNode) -> None:
        if node.role == "replica":
            self._gtid_from_binlog.add(node.name)

    def _node_args(self, node: TestNode) -> list[str]:
        """The server options that place ``node``: data dir, ports, files, identity."""
        assert self.base_dir is not None
        return [
            f"--datadir={node.dir}",
            f"--port={node.port}",
            f"--bind-address={HOST}",
            f"--socket={self.base_dir / (node.name + '.sock')}",
            f"--pid-file={self.base_dir / (node.name + '.pid')}",
            f"--tmpdir={self.base_dir}",
            f"--server-id={node.index + 1}",
            f"--report-host={node.name}",
        ]

    def _spawn(self, node: TestNode) -> ServerProcess:
        assert self._server is not None and self.base_dir is not None
        argv = [
            str(self._server),
            "--no-defaults",  # the system's my.cnf points at /run/mysqld
            *_root_args(),
            *self._node_args(node),
            "--log-bin=mysql-bin",
            "--relay-log=relay-bin",
            "--log-slave-updates",
            "--binlog-format=ROW",
            "--skip-slave-start",  # replication is configured from the harness's state
            "--max-connections=200",
            f"--read-only={1 if node.role == 'replica' else 0}",
            *_SERVER_OPTS,
            *self._tls_args(),
        ]
        log = self.base_dir / (node.name + ".log")
        return ServerProcess(argv, log_path=log, cwd=node.dir)

    def _tls_args(self) -> list[str]:
        """``--ssl-cert``/``--ssl-key`` of a self-signed certificate in the cluster's folder,
        made once, when ``tls``."""
        if not self.tls:
            return []
        assert self.base_dir is not None
        cert, key = self.base_dir / "tls-cert.pem", self.base_dir / "tls-key.pem"
        if not cert.exists():
            made = ["-subj", "/CN=clusterdb-test", "-keyout", str(key), "-out", str(cert)]
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", *made],
                check=True,
                capture_output=True,
                timeout=60,
            )
        return [f"--ssl-cert={cert}", f"--ssl-key={key}"]

    def _wait_ready(self, node: TestNode, timeout: float) -> None:
        def ready() -> bool:
            self._check_alive(node)
            with contextlib.closing(self._connect(node, admin=True, timeout=2)) as conn:
                conn.cursor().execute("SELECT 1")
            return True

        wait_for(f"{node.name} to accept connections", ready, timeout)

    def _after_start(self, node: TestNode) -> None:
        if node.role == "replica" and node.upstream is not None:
            self._configure_replica(node)

    def _configure_replica(self, node: TestNode) -> None:
        upstream = node.upstream
        assert upstream is not None
        with contextlib.closing(self._connect(node, admin=True)) as conn:
            cur = conn.cursor()
            cur.execute("STOP SLAVE")
            if node.name in self._gtid_from_binlog:
                cur.execute("SELECT @@gtid_binlog_pos")
                cur.execute("SET GLOBAL gtid_slave_pos = %s", [cur.fetchone()[0]])
                self._gtid_from_binlog.discard(node.name)
            cur.execute(
                "CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%s, MASTER_USER=%s, "
                "MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, "
                "MASTER_DELAY=%s",
                [HOST, upstream.port, self.admin_user, self.admin_password, math.ceil(node.delay)],
            )
            cur.execute("START SLAVE")

    def _connect(self, node: TestNode, admin: bool, timeout: float = 5) -> Any:
        try:
            import pymysql
        except ImportError:
            raise HarnessError(
                "the MariaDB harness needs PyMySQL: pip install 'clusterdb[pymysql]'"
            ) from None
        kwargs = self.connect_kwargs(node, via_proxy=False, admin=admin)
        if not self.tls:
            # The servers offer no TLS: spare PyMySQL's preferred-TLS context, which it builds
            # on every connect (some 50 ms on a 2-core AMD EPYC) only to find none offered.
            kwargs["ssl_disabled"] = True
        # read_timeout: without it a hung server blocks PyMySQL forever.
        return pymysql.connect(
            **kwargs,
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=max(timeout, 60),
            write_timeout=max(timeout, 60),
        )

    def _fence(self, old: TestNode) -> None:
        if not old.running:
            return
        if not old.hung:
            # Best effort: stop the writes (read_only: the application user lacks READ ONLY
            # ADMIN), then let the replicas get what the old primary has before it goes; a
            # write acknowledged during the wait would otherwise miss the promoted replica.
            with contextlib.suppress(Exception):
                self.execute(old, "SET GLOBAL read_only = 1")
            with contextlib.suppress(Exception):
                self._wait_caught_up(
                    [n for n in self.replicas if n.running and not n.hung],
                    time.monotonic() + 5.0,
                )
        self._stop_clean(old)

    def _promote(self, node: TestNode) -> None:
        with contextlib.closing(self._connect(node, admin=True)) as conn:
            cur = conn.cursor()
            cur.execute("STOP SLAVE IO_THREAD")
            status = _slave_status(cur)
            received = status.get("Gtid_IO_Pos") if status else None
            if received:
                # Apply what was received before cutting the link.
                cur.execute("SELECT MASTER_GTID_WAIT(%s, 30)", [received])
                if cur.fetchone()[0] != 0:
                    raise HarnessError(f"{node.name} did not apply its relay log within 30 s")
            cur.execute("STOP SLAVE")
            cur.execute("RESET SLAVE ALL")
            cur.execute("SET GLOBAL read_only = 0")

    def switchover(self, node: TestNode) -> None:
        """Switch over to replica ``node``: the old primary turns ``read_only`` and keeps
        running (refusing writes with error 1290), ``node`` is promoted once it has every
        write, and the others follow it. ``heal()`` brings back the original shape."""
        with self._lock:
            self._require_started()
            if node.role != "replica" or not node.running or node.hung:
                raise HarnessError(f"{node.name} is not a running replica")
            old = self.primary
            self.execute(old, "SET GLOBAL read_only = 1")
            self._topology_changed = True
            followers = [n for n in self.replicas if n.running and not n.hung]
            self._wait_caught_up(followers, time.monotonic() + 30.0)
            self._promote(node)
            old.role, node.role, node.delay = "replica", "primary", 0.0
            for other in self.nodes:
                other.upstream = None if other is node else node
            self._prepare(old)
            for other in [n for n in [*followers, old] if n is not node]:
                self._configure_replica(other)
            self._wait_streaming(timeout=30.0)

    def _repoint(self, node: TestNode) -> None:
        self._configure_replica(node)

    def _set_delay(self, node: TestNode, seconds: float) -> None:
        node.delay = seconds
        if node.running:
            if node.hung:
                raise HarnessError(f"{node.name} is hung: resume it before changing its delay")
            self._configure_replica(node)

    def _wait_streaming(self, timeout: float) -> None:
        primary = self.primary
        if not primary.running or primary.hung:
            return
        for node in self.replicas:
            if not node.running or node.hung or node.upstream is not primary:
                continue

            def streaming(node: TestNode = node) -> bool:
                with contextlib.closing(self._connect(node, admin=True)) as conn:
                    status = _slave_status(conn.cursor())
                if status.get("Slave_SQL_Running") == "No" and status.get("Last_SQL_Error"):
                    raise HarnessError(
                        f"replication stopped on {node.name}: {status['Last_SQL_Error']}"
                    )
                return (
                    status.get("Slave_IO_Running") == "Yes"
                    and status.get("Slave_SQL_Running") == "Yes"
                )

            wait_for(f"{node.name} to replicate from {primary.name}", streaming, timeout)

    def _wait_caught_up(self, replicas: list[TestNode], deadline: float) -> None:
        primary = self.primary
        if not primary.running or primary.hung:
            raise HarnessError(f"the primary {primary.name} is not running or is hung")
        (pos,) = self.execute(primary, "SELECT @@gtid_binlog_pos")[0]
        for node in replicas:
            remaining = max(deadline - time.monotonic(), 0.0)
            with contextlib.closing(self._connect(node, admin=True, timeout=remaining + 5)) as c:
                cur = c.cursor()
                cur.execute("SELECT MASTER_GTID_WAIT(%s, %s)", [pos, remaining])
                if cur.fetchone()[0] != 0:
                    raise HarnessError(
                        f"timed out waiting for {node.name} to reach GTID {pos!r} "
                        f"({_slave_status(cur).get('Last_SQL_Error') or 'no replication error'})"
                    )


def _slave_status(cur: Any) -> dict[str, Any]:
    cur.execute("SHOW SLAVE STATUS")
    row = cur.fetchone()
    if row is None:
        return {}
    return {d[0]: v for d, v in zip(cur.description, row, strict=True)}
