"""clusterdb's own CPU time per ``connect()`` and ``await connect_async()``, with no server.

Usage: ``.venv/bin/python bench/cpu_connect.py [--nodes 3] [--n 20000] [--repeat 7]
[--profile]``. A PyMySQL cluster of ``--nodes`` loopback addresses whose I/O is stubbed out at
the lowest level the adapters reach (socket open, the wait for the greeting, the driver's
connection object and handshake; the monitor's probes answer at once), so the whole clusterdb
path runs (plan, inline start, the adapter's keyword handling, stats, tagging) and nothing
else. Prints the best of ``--repeat`` runs of ``--n`` connects, in microseconds of process CPU
per connect; ``--profile`` adds a cProfile of one run of each.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import clusterdb  # noqa: E402
from clusterdb.drivers import mysql_async  # noqa: E402
from clusterdb.drivers import pymysql as pymysql_adapter  # noqa: E402
from clusterdb.drivers.base import ProbeResult  # noqa: E402

NAME = "cpu-bench"


class _Sock:
    """Stands for the socket of an attempt."""

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass

    def setsockopt(self, *args: Any) -> None:
        pass


class _Conn:
    """Stands for the driver's connection."""

    server_status = 0

    def close(self) -> None:
        pass


def _stub() -> None:
    """Replace every call that would reach a server with one that answers at once."""
    sock = _Sock()

    async def greeted(*args: Any) -> bool:
        return True

    async def connected(*args: Any) -> Any:
        return _Conn()

    stubs: list[tuple[object, str, Any]] = [
        (pymysql_adapter, "_open", lambda host, port, kind=None: sock),
        (pymysql_adapter, "_greeted", lambda sock, patience: True),
        (pymysql_adapter, "_unconnected", lambda kwargs, timeout: (_Conn(), None, None)),
        (pymysql_adapter, "_handshake", lambda conn, *args: conn),
        (pymysql_adapter.PyMySQLAdapter, "connect", lambda *args: _Conn()),
        (pymysql_adapter.PyMySQLAdapter, "probe", lambda self, conn: ProbeResult("primary", None)),
        (mysql_async, "_open", lambda host, port, kind=None: sock),
        (mysql_async, "_greeted", greeted),
        (mysql_async, "_connected", connected),
        (mysql_async, "_unconnected", lambda kwargs, timeout, sock: None),
    ]
    for owner, name, stub in stubs:
        setattr(owner, name, stub)


def _register(nodes: int) -> None:
    clusterdb.register(
        NAME,
        driver="pymysql",
        nodes=[{"name": f"n{i}", "host": "127.0.0.1", "port": 40000 + i} for i in range(nodes)],
        user="bench",
        password="bench",
        autocommit=True,
        ssl_disabled=True,
    )
    clusterdb.probe(NAME)


def _sync_run(n: int) -> None:
    connect = clusterdb.connect
    for _ in range(n):
        connect(NAME)


def _async_run(n: int) -> Callable[[], None]:
    async def run() -> None:
        connect = clusterdb.connect_async
        for _ in range(n):
            await connect(NAME)

    def go() -> None:
        asyncio.run(run())

    return go


def _best_us(run: Callable[[], None], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    _stub()
    _register(args.nodes)
    _sync_run(200)  # warm-up: nodes off trial, rankings kept
    async_run = _async_run(args.n)
    _async_run(200)()
    # The async figure includes asyncio.run()'s own set-up, spread over n connects.
    sync_us = _best_us(lambda: _sync_run(args.n), args.n, args.repeat)
    async_us = _best_us(async_run, args.n, args.repeat)
    print(f"connect()        {sync_us:6.2f} us CPU per connect ({args.nodes} nodes)")
    print(f"connect_async()  {async_us:6.2f} us CPU per connect ({args.nodes} nodes)")
    if args.profile:
        for label, run in (("connect", lambda: _sync_run(args.n)), ("async", async_run)):
            profile = cProfile.Profile()
            profile.runcall(run)
            print(f"--- {label}")
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    clusterdb.close()


if __name__ == "__main__":
    main()
