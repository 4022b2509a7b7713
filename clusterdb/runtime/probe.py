"""One probe of one node: connect, read role and lag, close. I/O only: the outcome is a value,
which :meth:`Cluster.probe` records under the cluster's lock.

A probe holds no connection between heartbeats (thousands of processes may watch one cluster),
and every step is bounded by ``timeout``: the connect by the driver's timeout, the query by a
watchdog that breaks the socket, so a node that hangs mid-probe cannot leave the monitor
waiting on it forever.
"""

from __future__ import annotations

import threading
import time

from clusterdb.core.node_state import ProbeOutcome
from clusterdb.drivers import ConnectArgs, DriverAdapter
from clusterdb.runtime.credentials import Credentials

__all__ = ["ProbeOutcome", "probe_once"]


def probe_once(
    adapter: DriverAdapter,
    target: ConnectArgs,
    timeout: float,
    credentials: Credentials | None = None,
) -> ProbeOutcome:
    """Probe the node at ``target`` now, each step bounded by ``timeout`` s; never raises
    (an ``Exception`` becomes the outcome's ``error``). ``credentials``: the cluster's
    password provider, asked for this connection's password."""
    started = time.monotonic()
    try:
        overrides = {} if credentials is None else credentials.overrides({})
        conn = adapter.connect(target, overrides, timeout)
    except Exception as exc:
        return ProbeOutcome(False, error=exc)
    connected = time.monotonic()
    watchdog = threading.Timer(timeout, adapter.abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        result = adapter.probe(conn)
        answered = time.monotonic()
    except Exception as exc:
        return ProbeOutcome(False, error=exc)
    finally:
        watchdog.cancel()
        adapter.close_quietly(conn)
    return ProbeOutcome(
        True,
        latency=connected - started,
        rtt=answered - connected,
        role=result.role,
        lag=result.lag,
        stopped=result.stopped,
        wsrep=result.wsrep,
        applied=result.applied,
    )
