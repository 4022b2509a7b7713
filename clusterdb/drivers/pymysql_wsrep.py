"""PyMySQL: a Galera node's wsrep status, for the probe (see :mod:`clusterdb.core.galera`)."""

from __future__ import annotations

from typing import Any

from clusterdb.core.galera import WsrepStatus

__all__ = ["wsrep_status"]

_WSREP_STATUS = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN "
    "('wsrep_local_state', 'wsrep_ready', 'wsrep_cluster_status')"
)


def wsrep_status(cursor: Any) -> tuple[bool, WsrepStatus] | None:
    """``(read_only, status)`` of a Galera node (its provider reports ``wsrep_local_state``),
    or None for any other server. One round trip more for a Galera node: ``read_only`` and
    ``wsrep_desync`` are variables, which no status query returns."""
    cursor.execute(_WSREP_STATUS)
    status = {str(name).lower(): str(value) for name, value in cursor.fetchall()}
    if "wsrep_local_state" not in status:
        return None
    cursor.execute("SELECT @@read_only, @@wsrep_desync")
    row = cursor.fetchone()
    wsrep = WsrepStatus(
        local_state=int(status["wsrep_local_state"]),
        ready=status.get("wsrep_ready") == "ON",
        cluster_status=status.get("wsrep_cluster_status", ""),
        desync=bool(row and int(row[1])),
    )
    return bool(row and int(row[0])), wsrep
