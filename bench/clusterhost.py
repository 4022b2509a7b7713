"""The benchmark's clusters, run in a child process, and the handle the benchmark holds.

Why a child: the harness proxies are an asyncio loop in a thread of the process that starts
them. In the benchmark's own process that thread would compete for the GIL with the contenders,
and more with clusterdb (which connects from worker threads) than with a vendor driver called
from the main thread. In a child they cost what a network hop costs: CPU, not the GIL.

Protocol: JSON lines. The child (``python -m bench.clusterhost psycopg pymysql``) answers first
with the clusters' description, then one reply per command read from stdin. It stops the
clusters on "stop" and at end of input (the parent died). It ignores Ctrl-C, which reaches
the whole process group: the parent, interrupted, sends "stop" on its way out.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["HostGone", "RemoteCluster", "RemoteNode", "RemoteProxy", "start_clusters"]

ROOT = Path(__file__).resolve().parent.parent
_SHAPES = {"psycopg": "PostgresCluster", "pymysql": "MariaDBCluster"}
_VERSION_SQL = {"psycopg": "SELECT version()", "pymysql": "SELECT VERSION()"}


class HostGone(RuntimeError):
    """The child running the clusters exited: nothing more can be measured."""


class _Channel:
    """The parent's end: one command at a time, one reply each."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self.proc = proc
        self._out: IO[str] = proc.stdin
        self._in: IO[str] = proc.stdout
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any]:
        line = self._in.readline()
        if not line:
            raise HostGone(f"cluster host exited (status {self.proc.poll()}); see stderr")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"cluster host: {reply.get('error')}")
        return reply

    def call(self, **command: Any) -> dict[str, Any]:
        with self._lock:
            self._out.write(json.dumps(command) + "\n")
            self._out.flush()
            return self.read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call(op="stop")
        with contextlib.suppress(Exception):
            self._out.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class RemoteProxy:
    """A node's proxy in the child: ``set_mode``, ``set_delay`` and ``reset`` as in the harness."""

    channel: _Channel
    driver: str
    node: str

    def set_mode(self, mode: str) -> None:
        self.channel.call(op="set_mode", driver=self.driver, node=self.node, value=mode)

    def set_delay(self, seconds: float) -> None:
        self.channel.call(op="set_delay", driver=self.driver, node=self.node, value=seconds)

    def reset(self) -> None:
        self.channel.call(op="reset", driver=self.driver, node=self.node)


@dataclass(eq=False)
class RemoteNode:
    name: str
    host: str
    port: int
    proxy_port: int
    role: str
    proxy: RemoteProxy


@dataclass
class RemoteCluster:
    """What the scenarios need of a harness cluster, for one running in the child.

    :meth:`fault` runs a topology change there: ``kill`` or ``start`` a node, ``promote`` or
    ``switchover`` to a replica (MariaDB), ``delay=<seconds>`` (a replica applies changes that
    late), ``heal`` (back to the original shape).
    """

    driver: str
    user: str
    password: str
    dbname: str
    dbname_key: str
    WHOAMI_SQL: str
    version: str
    nodes: list[RemoteNode] = field(default_factory=list)
    channel: _Channel | None = None

    def fault(self, kind: str, node: str = "") -> None:
        assert self.channel is not None
        self.channel.call(op="fault", driver=self.driver, node=node, value=kind)

    def node(self, name: str) -> RemoteNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def connect_kwargs(self, node: RemoteNode, via_proxy: bool = True) -> dict[str, Any]:
        return {
            "host": node.host,
            "port": node.proxy_port if via_proxy else node.port,
            "user": self.user,
            "password": self.password,
            self.dbname_key: self.dbname,
        }

    def node_specs(self, via_proxy: bool = True) -> list[dict[str, Any]]:
        return [
            {"name": n.name, "host": n.host, "port": n.proxy_port if via_proxy else n.port}
            for n in self.nodes
        ]


class ClusterHost:
    """The child process and the clusters it runs (a context manager)."""

    def __init__(self, drivers: Sequence[str], replicas: int = 2) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.clusterhost", f"--replicas={replicas}", *drivers],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._channel = _Channel(self._proc)
        self.clusters: dict[str, RemoteCluster] = {}
        try:
            hello = self._channel.read()
        except BaseException:
            self.close()
            raise
        for driver, info in hello["clusters"].items():
            cl = RemoteCluster(
                driver=driver,
                user=info["user"],
                password=info["password"],
                dbname=info["dbname"],
                dbname_key=info["dbname_key"],
                WHOAMI_SQL=info["whoami_sql"],
                version=info["version"],
                channel=self._channel,
            )
            cl.nodes = [
                RemoteNode(
                    name=n["name"],
                    host=n["host"],
                    port=n["port"],
                    proxy_port=n["proxy_port"],
                    role=n["role"],
                    proxy=RemoteProxy(self._channel, driver, n["name"]),
                )
                for n in info["nodes"]
            ]
            self.clusters[driver] = cl

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ClusterHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_clusters(drivers: Sequence[str], replicas: int = 2) -> ClusterHost:
    """Start a child running a cluster per driver (a primary and ``replicas`` replicas)."""
    return ClusterHost(drivers, replicas)


# -- the child --


def _describe(driver: str, cl: Any) -> dict[str, Any]:
    version = str(cl.execute(cl.primary, _VERSION_SQL[driver])[0][0])
    return {
        "user": cl.user,
        "password": cl.password,
        "dbname": cl.dbname,
        "dbname_key": "dbname" if driver == "psycopg" else "database",
        "whoami_sql": cl.WHOAMI_SQL,
        "version": version,
        "nodes": [
            {
                "name": n.name,
                "host": n.host,
                "port": n.port,
                "proxy_port": n.proxy_port,
                "role": n.role,
            }
            for n in cl.nodes
        ],
    }


def _serve(clusters: dict[str, Any], out: IO[str]) -> None:
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.get("op")
        if op == "stop":
            out.write(json.dumps({"ok": True}) + "\n")
            out.flush()
            return
        try:
            if op == "fault":
                _fault(clusters[cmd["driver"]], cmd["value"], cmd["node"])
            else:
                _proxy_op(clusters[cmd["driver"]].node(cmd["node"]).proxy, op, cmd.get("value"))
            reply: dict[str, Any] = {"ok": True}
        except Exception as exc:
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _proxy_op(proxy: Any, op: str, value: Any) -> None:
    if op == "set_mode":
        proxy.set_mode(value)
    elif op == "set_delay":
        proxy.set_delay(float(value))
    elif op == "reset":
        proxy.reset()
    else:
        raise ValueError(f"unknown op {op!r}")


def _fault(cluster: Any, kind: str, node: str) -> None:
    if kind == "heal":
        cluster.heal()
    elif kind == "kill":
        cluster.node(node).kill()
    elif kind == "start":
        cluster.node(node).start()
    elif kind == "promote":
        cluster.promote(cluster.node(node))
    elif kind == "switchover":
        cluster.switchover(cluster.node(node))
    elif kind.startswith("delay="):  # replication delay of a replica, seconds
        cluster.set_replication_delay(cluster.node(node), float(kind.removeprefix("delay=")))
    else:
        raise ValueError(f"unknown fault {kind!r}")


def main(argv: Sequence[str]) -> int:
    from clusterdb import testing

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replicas = 2
    drivers: list[str] = []
    for arg in argv:
        if arg.startswith("--replicas="):
            replicas = int(arg.split("=", 1)[1])
        else:
            drivers.append(arg)
    # Our stdout is the protocol channel: nothing else may write to it.
    out = sys.stdout
    sys.stdout = sys.stderr
    try:
        with contextlib.ExitStack() as stack:
            clusters: dict[str, Any] = {}
            for driver in drivers:
                shape = getattr(testing, _SHAPES[driver])
                clusters[driver] = stack.enter_context(shape(replicas=replicas))
            hello = {"ok": True, "clusters": {d: _describe(d, c) for d, c in clusters.items()}}
            out.write(json.dumps(hello) + "\n")
            out.flush()
            _serve(clusters, out)
    except Exception as exc:
        with contextlib.suppress(Exception):
            out.write(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
            out.flush()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
