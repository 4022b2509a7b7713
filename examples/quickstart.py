"""Quickstart: register a cluster, connect, look at the per-node stats.

    CLUSTERDB_NODES="pg1=10.0.0.1:5432,pg2=10.0.0.2:5432" CLUSTERDB_USER=app \
    CLUSTERDB_PASSWORD=... CLUSTERDB_DBNAME=app python examples/quickstart.py

``clusterdb.connect()`` returns psycopg's own connection, from whichever node answered first.
"""

from __future__ import annotations

import os
from typing import Any

import clusterdb


def settings_from_env() -> dict[str, Any]:
    """Connection settings from ``CLUSTERDB_NODES`` (``name=host:port,...``) and friends."""
    nodes = []
    for item in os.environ.get("CLUSTERDB_NODES", "pg1=127.0.0.1:5432").split(","):
        name, _, address = item.strip().rpartition("=")
        host, _, port = address.rpartition(":")
        nodes.append({"name": name or address, "host": host, "port": int(port)})
    return {
        "nodes": nodes,
        "user": os.environ.get("CLUSTERDB_USER", "postgres"),
        # Secrets come from the environment, never from argv (visible in `ps`).
        "password": os.environ.get("CLUSTERDB_PASSWORD", ""),
        "dbname": os.environ.get("CLUSTERDB_DBNAME", "postgres"),
    }


def main(nodes: list[dict[str, Any]], *, user: str, password: str, dbname: str) -> None:
    clusterdb.register(
        "app",
        driver="psycopg",
        nodes=nodes,
        user=user,
        password=password,
        dbname=dbname,
        connect_timeout=2.0,  # one deadline for the whole connect(), all nodes together
    )
    try:
        with clusterdb.connect("app") as conn:  # a psycopg.Connection
            row = conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
        assert row is not None
        port, in_recovery = row
        print(f"connected: server port {port}, {'replica' if in_recovery else 'primary'}")

        snap = clusterdb.stats.snapshot("app")
        for node in snap.nodes:
            print(
                f"node {node.name} {node.address}: state={node.state} "
                f"connects={node.connects} errors={node.connect_errors}"
            )
    finally:
        clusterdb.unregister("app")


if __name__ == "__main__":
    main(**settings_from_env())
