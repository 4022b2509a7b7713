"""A single-member etcd for the Patroni harness: Debian's ``etcd-server``, on loopback ports of
its own, data in the harness's temp dir; stop and start it again (the "etcd down" fault).

etcd 3.4 serves the v3 API over HTTP through its gRPC gateway (``/v3/...``), which is what
Patroni's ``etcd3`` store speaks; no client library is needed here.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from clusterdb.testing.errors import HarnessError
from clusterdb.testing.ports import HOST, free_port
from clusterdb.testing.process import ServerProcess, wait_for

__all__ = ["INSTALL_HINT", "Etcd", "find_etcd"]

INSTALL_HINT = "apt-get install etcd-server (or run `make servers` as root)"


def find_etcd() -> str:
    """The etcd binary: /usr/bin/etcd or on PATH."""
    found = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if found is None:
        raise HarnessError(f"etcd not found: {INSTALL_HINT}")
    return found


class Etcd:
    """One etcd member serving clients on ``127.0.0.1:client_port``."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "etcd"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: ServerProcess | None = None

    @property
    def endpoint(self) -> str:
        """``host:port`` for clients (Patroni's ``etcd3.hosts``)."""
        return f"{HOST}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive

    def start(self, timeout: float = 30.0) -> None:
        """Start etcd (again: the data dir is kept) and wait until it answers."""
        if self.running:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        client = f"http://{HOST}:{self.client_port}"
        peer = f"http://{HOST}:{self.peer_port}"
        argv = [
            find_etcd(),
            "--name=clusterdb-test",
            f"--data-dir={self.dir / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=clusterdb-test={peer}",
            "--initial-cluster-state=new",
            "--enable-v2=true",
            "--logger=zap",
            "--log-outputs=stderr",
        ]
        self.process = ServerProcess(argv, log_path=self.dir.parent / "etcd.log")
        wait_for(f"etcd on {self.endpoint}", self._healthy, timeout)

    def _healthy(self) -> bool:
        process = self.process
        if process is None or not process.alive:
            tail = process.log_tail() if process is not None else ""
            raise HarnessError(f"etcd exited:\n{tail}")
        url = f"http://{self.endpoint}/health"
        with urllib.request.urlopen(url, timeout=1.0) as answer:
            return bool(json.loads(answer.read()).get("health") == "true")

    def delete(self, key: str) -> int:
        """Delete ``key`` (the v3 gateway's ``kv/deleterange``); returns how many keys went."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
        url = f"http://{self.endpoint}/v3/kv/deleterange"
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5.0) as answer:
            return int(json.loads(answer.read()).get("deleted", 0))

    def stop(self) -> None:
        """Kill etcd (the data dir is kept, for :meth:`start`)."""
        if self.process is not None:
            self.process.kill_tree()
            self.process = None

    def alive(self) -> bool:
        """True when etcd answers its health check now."""
        try:
            return self.running and self._healthy()
        except (OSError, urllib.error.URLError, HarnessError, ValueError):
            return False
