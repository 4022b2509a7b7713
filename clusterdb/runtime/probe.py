"""One probe of one node: connect, read role and lag, close. I/O only; the outcome goes to
:meth:`Cluster.record_probe`, which decides under the cluster's lock.

A probe holds no connection between heartbeats (thousands of processes may watch one cluster),
and every step is bounded by the cluster's ``connect_timeout``: the connect by the driver's
timeout, the query by a watchdog that breaks the socket, so a node that hangs mid-probe cannot
leave the monitor waiting on it forever.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clusterdb.runtime.cluster import Cluster

__all__ = ["probe_node"]


def probe_node(cluster: Cluster, node: str) -> bool:
    """Probe ``node`` of ``cluster`` now and record the outcome; True when it answered."""
    adapter = cluster.adapter
    timeout = cluster.options.connect_timeout
    started = time.monotonic()
    try:
        conn = adapter.connect(cluster.target(node), {}, timeout)
    except Exception as exc:
        cluster.record_probe(node, False, exc=exc)
        return False
    connected = time.monotonic()
    watchdog = threading.Timer(timeout, adapter.abort, args=(conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        result = adapter.probe(conn)
        answered = time.monotonic()
    except Exception as exc:
        cluster.record_probe(node, False, exc=exc)
        return False
    finally:
        watchdog.cancel()
        adapter.close_quietly(conn)
    cluster.record_probe(
        node,
        True,
        latency=connected - started,
        rtt=answered - connected,
        role=result.role,
        lag=result.lag,
        stopped=result.stopped,
    )
    return True
