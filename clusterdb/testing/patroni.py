"""``PatroniCluster(members=3)``: real Patroni (from PyPI) over a real etcd, running PostgreSQL
from Debian, every port on loopback, every file in a temp dir removed at stop.

Faults are the ones a Patroni cluster meets in production: :meth:`kill_leader` (Patroni and
its PostgreSQL killed; Patroni fails over once the leader key expires), :meth:`switchover`
(``patronictl switchover``), :meth:`add_member` (a new replica cloned by Patroni),
:meth:`stop_etcd` / :meth:`start_etcd` (the store gone: with ``failsafe_mode`` on, as here,
the leader stays primary while it reaches every member; the REST API's ``/cluster`` hangs).

Each member's PostgreSQL node is named after the member (``m1``...), and answers
:attr:`WHOAMI_SQL` with that name, so tests can tell where a connection landed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import site
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from clusterdb.testing import cleanup
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.etcd import Etcd
from clusterdb.testing.patroni_config import (
    SCOPE,
    Accounts,
    Member,
    get_cluster,
    kill_postmaster,
    member_config,
    write_config,
)
from clusterdb.testing.postgres_template import chown, find_bindir, os_user
from clusterdb.testing.process import ServerProcess, run, wait_for

__all__ = ["PatroniCluster"]

HEALTHY_STATES = ("running", "streaming")


@functools.cache
def patroni_python(user: str | None) -> tuple[str, dict[str, str]]:
    """A Python that ``user`` (who runs PostgreSQL) can run with Patroni importable, and the
    environment it needs: this interpreter, or (when it lives where ``user`` cannot read, a
    pyenv under /root) the system's Python of the same version with this one's packages."""
    paths = os.pathsep.join([*site.getsitepackages(), *sys.path[1:]])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python, env in (
        (sys.executable, {}),
        (f"/usr/bin/python{version}", {"PYTHONPATH": paths}),
    ):
        check = [python, "-c", "import patroni, psycopg"]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                check,
                user=user,
                env={**env, "PATH": "/usr/bin:/bin"},
                capture_output=True,
                timeout=60,
            )
            if done.returncode == 0:
                return python, env
    raise HarnessError(
        f"no Python that {user or 'this user'} can run imports patroni: "
        "pip install 'patroni[etcd3,psycopg3]' (the test extras have it)"
    )


class PatroniCluster(cleanup.StartStop):
    """A Patroni-managed PostgreSQL cluster of ``members`` members over one etcd."""

    WHOAMI_SQL = "SELECT current_setting('clusterdb.member')"

    def __init__(self, members: int = 3) -> None:
        if members < 1:
            raise HarnessError("a Patroni cluster needs at least one member")
        self.size = members
        self.accounts = Accounts(
            admin_password=secrets.token_hex(12),
            replication_password=secrets.token_hex(12),
            app_password=secrets.token_hex(12),
        )
        self.members: list[Member] = []
        self.base: Path | None = None
        self.etcd: Etcd | None = None
        self._namespace = f"/clusterdb-{secrets.token_hex(4)}/"
        self._lock = threading.RLock()
        self._user = os_user()
        self._bindir: Path | None = None
        self.leader_name: str | None = None
        """The leader once started (for a failed start's clean-up); :meth:`leader` is live."""

    def __repr__(self) -> str:
        return f"<PatroniCluster members={[m.name for m in self.members]}>"

    # -- life cycle --

    def start(self, timeout: float = 120.0) -> None:
        """etcd, then every member; returns once a leader runs and every replica streams."""
        with self._lock:
            if self.base is not None:
                return
            self._bindir = find_bindir()
            self.base = cleanup.make_tempdir("patroni")
            chown(self.base, self._user)
            cleanup.register(self)
            self.etcd = Etcd(self.base)
            try:
                self._boot(timeout)
            finally:
                if not self.members or self.leader_name is None:
                    self.stop()  # a failed start leaves nothing behind

    def _boot(self, timeout: float) -> None:
        assert self.etcd is not None
        self.etcd.start()
        for _ in range(self.size):
            self._spawn(self._new_member())
        self.wait_healthy(timeout)
        self._create_app_account()
        self.leader_name = self.leader()

    def stop(self) -> None:
        """Kill every member and etcd, remove the temp dir (idempotent)."""
        with self._lock:
            self._emergency_stop()
            cleanup.unregister(self)

    def _emergency_stop(self) -> None:
        for member in self.members:
            self._kill(member)
        if self.etcd is not None:
            self.etcd.stop()
        if self.base is not None:
            cleanup.remove_tempdir(self.base)
            self.base = None

    def _new_member(self) -> Member:
        assert self.base is not None
        member = Member(
            name=f"m{len(self.members) + 1}", dir=self.base / f"m{len(self.members) + 1}"
        )
        member.dir.mkdir()
        chown(member.dir, self._user)
        self.members.append(member)
        return member

    def _spawn(self, member: Member) -> None:
        assert self.etcd is not None and self._bindir is not None
        config = member_config(
            member, self.etcd.endpoint, self._bindir, self.accounts, self._namespace
        )
        write_config(member, config)
        chown(member.config_path, self._user)
        python, extra = patroni_python(self._user)
        env = {"HOME": str(member.dir), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **extra}
        member.process = ServerProcess(
            [python, "-m", "patroni", str(member.config_path)],
            log_path=member.dir.parent / f"{member.name}.log",
            user=self._user,
            env=env,
        )

    def _kill(self, member: Member) -> None:
        if member.process is not None:
            member.process.kill_tree()
            member.process = None  # killed on purpose: not an unexpected exit
        kill_postmaster(member.data_dir)

    # -- Patroni's view --

    @property
    def rest_urls(self) -> list[str]:
        """Every member's REST API URL, running or not (what a client would be given)."""
        return [m.rest_url for m in self.members]

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise HarnessError(f"no member {name!r}: {[m.name for m in self.members]}")

    def cluster_state(self) -> dict[str, Any]:
        """``GET /cluster`` from the first running member that answers."""
        last: Exception | None = None
        for member in self.members:
            if not member.running:
                continue
            try:
                return get_cluster(member.rest_url)
            except Exception as exc:
                last = exc
        raise ConnectionError(f"no Patroni REST API answers (last error: {last!r})")

    def leader(self) -> str | None:
        """The member Patroni reports as leader now, or None."""
        for item in self.cluster_state().get("members", []):
            if item.get("role") in ("leader", "standby_leader"):
                return str(item["name"])
        return None

    def replicas(self) -> list[str]:
        return [
            str(m["name"])
            for m in self.cluster_state().get("members", [])
            if m.get("role") not in ("leader", "standby_leader")
        ]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until a leader runs and every running member's PostgreSQL streams or runs."""

        def healthy() -> bool:
            for member in self.members:
                if member.process is not None and not member.process.alive:
                    raise HarnessError(f"{member.name} exited:\n{member.process.log_tail()}")
            state = self.cluster_state()
            alive = {m.name for m in self.members if m.running}
            listed = {str(m["name"]): m for m in state.get("members", []) if m["name"] in alive}
            leaders = [m for m in listed.values() if m.get("role") == "leader"]
            return (
                len(listed) == len(alive)
                and len(leaders) == 1
                and all(m.get("state") in HEALTHY_STATES for m in listed.values())
            )

        wait_for("a Patroni leader and streaming replicas", healthy, timeout)

    def wait_leader(self, other_than: str | None = None, timeout: float = 60.0) -> str:
        """The leader, once there is one other than ``other_than`` running and its PostgreSQL
        out of recovery (Patroni reports a new leader a moment before its promotion ends);
        returns its name."""
        found: list[str] = []

        def elected() -> bool:
            for item in self.cluster_state().get("members", []):
                if item.get("role") == "leader" and item.get("state") == "running":
                    name = str(item["name"])
                    if name != other_than and self.is_primary(name):
                        found.append(name)
                        return True
            return False

        wait_for(f"a Patroni leader other than {other_than}", elected, timeout)
        return found[-1]

    def is_primary(self, name: str) -> bool:
        """True when member ``name``'s PostgreSQL is out of recovery (writable)."""
        return self.execute(name, "SELECT pg_is_in_recovery()") == [(False,)]

    # -- faults --

    def kill_leader(self, expire: bool = False) -> str:
        """SIGKILL the leader's Patroni and PostgreSQL; returns its name. Patroni promotes a
        replica once the leader key expires (within ``ttl``, 20 s); ``expire``: delete its
        leader and member keys at once instead, as their expiry would (the replicas then race
        for the leader key on their next loop, ``loop_wait`` 1 s, and the dead member leaves
        the failsafe topology), so a test does not wait out the ttl."""
        with self._lock:
            leader = self.leader()
            if leader is None:
                raise HarnessError("no leader to kill")
            self._kill(self.member(leader))
            if expire:
                assert self.etcd is not None
                for key in ("leader", f"members/{leader}"):
                    self.etcd.delete(f"{self._namespace}{SCOPE}/{key}")
            return leader

    def switchover(self, candidate: str | None = None, timeout: float = 60.0) -> str:
        """``patronictl switchover`` to ``candidate`` (default: the first replica); returns
        the new leader once Patroni reports it running."""
        with self._lock:
            leader = self.leader()
            if leader is None:
                raise HarnessError("no leader to switch over from")
            target = candidate or self.replicas()[0]
            code = "import sys; from patroni.ctl import ctl; sys.exit(ctl())"
            config = str(self.member(leader).config_path)
            argv = [sys.executable, "-c", code, "-c", config, "switchover", "--force"]
            run([*argv, "--leader", leader, "--candidate", target], what="patronictl switchover")
            return self.wait_leader(other_than=leader, timeout=timeout)

    def add_member(self, timeout: float = 90.0) -> Member:
        """Start one more member (Patroni clones it from the leader); returns once it streams."""
        with self._lock:
            member = self._new_member()
            self._spawn(member)
            self.wait_healthy(timeout)
            return member

    def restart_member(self, name: str, timeout: float = 90.0) -> None:
        """Start a killed member's Patroni again (it rejoins as a replica)."""
        with self._lock:
            member = self.member(name)
            self._kill(member)
            with contextlib.suppress(OSError):
                (member.data_dir / "postmaster.pid").unlink()
            self._spawn(member)
            self.wait_healthy(timeout)

    def stop_etcd(self) -> None:
        """Kill etcd: Patroni can no longer renew the leader key nor elect one."""
        with self._lock:
            assert self.etcd is not None
            self.etcd.stop()

    def start_etcd(self) -> None:
        with self._lock:
            assert self.etcd is not None
            self.etcd.start()

    # -- clients --

    def connect(self, name: str, admin: bool = True, timeout: int = 5) -> Any:
        """A psycopg connection (autocommit) to member ``name``'s PostgreSQL."""
        import psycopg

        member, a = self.member(name), self.accounts
        user, password = (a.admin_user, a.admin_password) if admin else (a.app_user, a.app_password)
        dbname = "postgres" if admin else a.dbname
        return psycopg.connect(
            host=member.host,
            port=member.pg_port,
            user=user,
            password=password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=timeout,
        )

    def execute(self, name: str, sql: str, admin: bool = True) -> list[tuple[Any, ...]]:
        """Run one statement on member ``name``; its rows (``[]`` when it returns none)."""
        with contextlib.closing(self.connect(name, admin=admin)) as conn:
            cur = conn.execute(sql)
            return [] if cur.description is None else [tuple(r) for r in cur.fetchall()]

    def _create_app_account(self) -> None:
        leader = self.leader()
        assert leader is not None
        a = self.accounts
        self.execute(leader, f"CREATE ROLE {a.app_user} LOGIN PASSWORD '{a.app_password}'")
        self.execute(leader, f"GRANT pg_monitor TO {a.app_user}")
        self.execute(leader, f"CREATE DATABASE {a.dbname} OWNER {a.app_user}")

    def node_specs(self) -> list[dict[str, Any]]:
        """``[{"name", "host", "port"}, ...]``: every member's PostgreSQL."""
        return [{"name": m.name, "host": m.host, "port": m.pg_port} for m in self.members]

    def register_kwargs(self, discovery: bool = True) -> dict[str, Any]:
        """What ``clusterdb.register(name, **kwargs)`` needs: the application account, the
        members as nodes and, with ``discovery``, every member's REST API as ``patroni``."""
        a = self.accounts
        kwargs: dict[str, Any] = {
            "driver": "psycopg",
            "nodes": self.node_specs(),
            "user": a.app_user,
            "password": a.app_password,
            "dbname": a.dbname,
        }
        if discovery:
            kwargs["patroni"] = self.rest_urls
        return kwargs

    def wait_caught_up(self, timeout: float = 30.0) -> None:
        """Until every replica Patroni lists reports no lag."""

        def caught_up() -> bool:
            members = self.cluster_state().get("members", [])
            return all(m.get("lag", 0) in (0, None) for m in members if m.get("role") != "leader")

        wait_for("Patroni replicas caught up", caught_up, timeout)
