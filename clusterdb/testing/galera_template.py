"""The per-process Galera template: the MariaDB template after one bootstrap and a clean
shutdown, so that its grastate.dat names a cluster history. Nodes copied from it join with an
incremental transfer of the few events since (no dump), which is quicker."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from clusterdb.testing import cleanup
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.process import run

__all__ = ["get"]

_lock = threading.Lock()
_path: Path | None = None


def get(seed: Callable[[], Cluster]) -> Path:
    """The template's data dir, made on first use from the one-node cluster ``seed()``
    (started from the MariaDB template, then stopped cleanly)."""
    global _path
    with _lock:
        if _path is None or not _path.exists():
            _path = _create(seed())
        return _path


def _create(cluster: Cluster) -> Path:
    try:
        cluster.start()
        node = cluster.nodes[0]
        with cluster._lock:
            cluster._stop_clean(node)
        data = cleanup.make_tempdir("galera-template") / "data"
        run(["cp", "-a", str(node.dir), str(data)], what="copying the Galera template")
    finally:
        cluster.stop()
    for name in ("galera.cache", "gvwstate.dat"):
        (data / name).unlink(missing_ok=True)
    return data
