"""The pieces of a Patroni test cluster that are plain data: each member's Patroni config, the
REST API's ``/cluster`` read, and killing a member's orphaned postmaster.

Timings are Patroni's smallest: ``ttl`` 20 s (Patroni raises anything lower to 20),
``loop_wait`` 1 s, ``retry_timeout`` 5 s; a killed leader's key expires within ``ttl``, and
Patroni then promotes the healthiest replica.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterdb.testing.ports import HOST, free_port
from clusterdb.testing.process import ServerProcess, descendants

__all__ = [
    "SCOPE",
    "Accounts",
    "Member",
    "get_cluster",
    "kill_postmaster",
    "member_config",
    "write_config",
]

SCOPE = "clusterdb-test"
TTL, LOOP_WAIT, RETRY_TIMEOUT = 20, 1, 5


@dataclass(frozen=True)
class Accounts:
    """The cluster's accounts (passwords random per cluster)."""

    admin_password: str
    replication_password: str
    app_password: str
    admin_user: str = "postgres"
    replication_user: str = "replicator"
    app_user: str = "clusterdb"
    dbname: str = "clusterdb"


@dataclass
class Member:
    """One Patroni member: its directory, ports and Patroni process."""

    name: str
    dir: Path
    pg_port: int = field(default_factory=free_port)
    rest_port: int = field(default_factory=free_port)
    process: ServerProcess | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def rest_url(self) -> str:
        """The member's Patroni REST API (``GET /cluster``, ``/leader``...)."""
        return f"http://{HOST}:{self.rest_port}"

    @property
    def config_path(self) -> Path:
        return self.dir / "patroni.json"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive


def member_config(
    member: Member, etcd: str, bindir: Path, accounts: Accounts, namespace: str
) -> dict[str, Any]:
    """Patroni's config for ``member`` (JSON is YAML): etcd3 store, REST API and PostgreSQL
    on loopback, SCRAM for TCP, unix sockets in the member's directory."""
    parameters = {
        "clusterdb.member": member.name,  # what WHOAMI_SQL reads (Patroni sets cluster_name)
        "unix_socket_directories": str(member.dir),
        "max_connections": 60,
        "shared_buffers": "16MB",
        "fsync": "off",  # throwaway data: no fsync wait on a shared CI machine
        "wal_level": "replica",
        "hot_standby": "on",
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_keep_size": "64MB",
    }
    return {
        "scope": SCOPE,
        "namespace": namespace,
        "name": member.name,
        "restapi": {
            "listen": f"{HOST}:{member.rest_port}",
            "connect_address": f"{HOST}:{member.rest_port}",
        },
        "etcd3": {"hosts": [etcd]},
        "bootstrap": {
            "dcs": {
                "ttl": TTL,
                "loop_wait": LOOP_WAIT,
                "retry_timeout": RETRY_TIMEOUT,
                "maximum_lag_on_failover": 64 * 1024 * 1024,
                # etcd down: the leader stays primary while it reaches every member's REST
                # API (without it, Patroni demotes the leader after retry_timeout).
                "failsafe_mode": True,
                "postgresql": {"use_pg_rewind": False, "parameters": parameters},
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C"}],
        },
        "postgresql": {
            "listen": f"{HOST}:{member.pg_port}",
            "connect_address": f"{HOST}:{member.pg_port}",
            "data_dir": str(member.data_dir),
            "bin_dir": str(bindir),
            "pgpass": str(member.dir / "pgpass"),
            "authentication": {
                "superuser": {"username": accounts.admin_user, "password": accounts.admin_password},
                "replication": {
                    "username": accounts.replication_user,
                    "password": accounts.replication_password,
                },
            },
            "parameters": parameters,
            "pg_hba": [
                "local all all trust",
                f"host all all {HOST}/32 scram-sha-256",
                f"host replication {accounts.replication_user} {HOST}/32 scram-sha-256",
            ],
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
    }


def write_config(member: Member, config: dict[str, Any]) -> None:
    member.config_path.write_text(json.dumps(config, indent=2))


def get_cluster(url: str, timeout: float = 1.0) -> dict[str, Any]:
    """``GET {url}/cluster``: Patroni's view of every member (role, state, host, port, lag)."""
    with urllib.request.urlopen(f"{url}/cluster", timeout=timeout) as answer:
        data: dict[str, Any] = json.loads(answer.read())
    return data


def kill_postmaster(data_dir: Path) -> None:
    """SIGKILL the postmaster named by ``data_dir/postmaster.pid`` and every backend.

    Patroni starts PostgreSQL the way pg_ctl does (a helper that exits), so the postmaster is
    no descendant of the Patroni process: killing Patroni alone leaves a primary running.
    """
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        Path(f"/proc/{pid}").stat()
    except OSError:
        return
    _quiet_kill(pid, signal.SIGSTOP)
    for child in descendants(pid):
        _quiet_kill(child, signal.SIGKILL)
    _quiet_kill(pid, signal.SIGKILL)


def _quiet_kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
