"""``python -m clusterdb demo``: a narrated failover on a throwaway local PostgreSQL cluster.

Starts a primary and two replicas with :mod:`clusterdb.testing`, registers them as cluster
``demo`` and runs a small workload (about 10 connects a second from three threads: one asking
for the primary, one for ``prefer-replica``, one for any node). Each connect asks the server
which node it reached. Then, step by step: a replica hangs, the primary is killed, a replica is
promoted, and everything is brought back, while a live table shows where connects land and how
the per-node stats move. ``query_timeout`` bounds a query on a node that froze after the
connect; each step reports its calls that stalled (took a second or more) as well as those that
failed, and the closing verdict is made of those counts.

On a terminal the table redraws in place; otherwise (CI, a pipe) it prints plain lines. The
servers are stopped on exit, on Ctrl-C and on SIGTERM.

Modules: :mod:`.workload` (threads and tally), :mod:`.screen` (output and log tap),
:mod:`.script` (the steps); this one starts the servers and tears everything down.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, TextIO

import clusterdb
from clusterdb.tools.demo.screen import Screen, log_tap
from clusterdb.tools.demo.script import Pace, Stage, conclude, play, steps, topology
from clusterdb.tools.demo.workload import CLUSTER, Tally, Workload

if TYPE_CHECKING:
    from clusterdb.testing import Cluster

__all__ = ["run"]


def run(fast: bool = False, out: TextIO | None = None) -> int:
    """Run the demo; return the exit status (0 when it ran to the end)."""
    stream = out if out is not None else sys.stdout
    try:
        with _sigterm_unwinds():
            return _run(Pace.of(fast), stream)
    except KeyboardInterrupt:
        stream.write("\ninterrupted: servers stopped\n")
        return 130


def _run(pace: Pace, out: TextIO) -> int:
    try:
        from clusterdb.testing import PostgresCluster
    except ImportError as exc:
        out.write(f"the demo needs clusterdb.testing: {exc}\n")
        return 1
    screen = Screen(out, [])
    screen.say(
        "clusterdb demo: a PostgreSQL primary and two replicas on this machine, "
        f"five steps, about {5 * pace.step_s + 5:.0f} s"
    )
    screen.say("starting the servers (one initdb, copied for each node; about a second)...")
    cluster = PostgresCluster(replicas=2)
    # Torn down in reverse: workload, log tap, the registered cluster, then the servers.
    with contextlib.ExitStack() as stack:
        stack.callback(_stop_servers, screen, cluster)
        if not _start_servers(screen, cluster):
            return 1
        stack.callback(_forget_cluster)
        clusterdb.register(
            CLUSTER,
            **cluster.register_kwargs(),
            connect_timeout=pace.timeout,
            query_timeout=pace.timeout,  # a query on a node frozen after connect: fails
            heartbeat=pace.heartbeat,
        )
        tap = stack.enter_context(log_tap(screen.secrets))
        tally = Tally()
        stack.enter_context(Workload(str(cluster.WHOAMI_SQL), tally, pace.timeout))
        stage = Stage(screen, tally, tap, pace.step_s)
        for step in steps(cluster):
            play(stage, step)
        conclude(screen, tally, cluster)
    return 0


def _start_servers(screen: Screen, cluster: Cluster) -> bool:
    started = time.monotonic()
    try:
        cluster.start()
    except Exception as exc:
        screen.say(f"could not start the PostgreSQL servers: {exc}")
        screen.say("install the PostgreSQL server packages (make servers) and try again")
        return False
    screen.secrets.append(str(cluster.password))
    screen.say(f"servers up in {time.monotonic() - started:.1f}s: " + topology(cluster))
    return True


def _forget_cluster() -> None:
    with contextlib.suppress(Exception):
        clusterdb.unregister(CLUSTER)
    with contextlib.suppress(Exception):
        clusterdb.close()


def _stop_servers(screen: Screen, cluster: Cluster) -> None:
    cluster.stop()
    screen.say("servers stopped, temporary files removed")


def _terminate(signum: int, frame: FrameType | None) -> None:
    # Unwind the main thread so that the exit stack stops the servers.
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
