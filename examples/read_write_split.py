"""Read/write split by role: writes go to the primary, reads to a replica not too far behind.

    CLUSTERDB_NODES="pg1=10.0.0.1:5432,pg2=10.0.0.2:5432,pg3=10.0.0.3:5432" \
    CLUSTERDB_USER=app CLUSTERDB_PASSWORD=... CLUSTERDB_DBNAME=app \
    python examples/read_write_split.py

``role="primary"`` reaches the node that accepts writes, wherever it is after a failover.
``role="prefer-replica"`` reaches a replica whose lag is within ``max_lag`` seconds, or the
primary when no such replica is up, so reads survive the loss of every replica.
``after=clusterdb.causal_token(conn)`` (taken after the commit) reads your own writes: only a
replica that has applied them serves the read, else (after ``causal_wait``) the primary.
"""

from __future__ import annotations

import os
from typing import Any

from psycopg import sql

import clusterdb
import clusterdb.psycopg


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


def main(
    nodes: list[dict[str, Any]], *, user: str, password: str, dbname: str, max_lag: float = 5.0
) -> None:
    clusterdb.register(
        "app",
        driver="psycopg",
        nodes=nodes,
        user=user,
        password=password,
        dbname=dbname,
        connect_timeout=2.0,
        max_lag=max_lag,  # replicas further behind than this get no reads until they catch up
    )
    table = sql.Identifier(f"clusterdb_example_rw_{os.getpid()}")
    try:
        with clusterdb.psycopg.connect("app", role="primary") as conn:
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, note text)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'hello')").format(table))
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            conn.commit()
            # Where the primary's log stood after the commit: plain text, fit for a cookie.
            token = clusterdb.causal_token(conn)
        assert row is not None
        print(f"write: on the {'replica' if row[0] else 'primary'}")

        # Replication is asynchronous; with the token, the read goes to a replica that has
        # replayed the write (or, none within causal_wait, to the primary): never stale.
        query = sql.SQL("SELECT pg_is_in_recovery(), (SELECT count(*) FROM {})").format(table)
        with clusterdb.psycopg.connect("app", role="prefer-replica", after=token) as conn:
            in_recovery, count = conn.execute(query).fetchone() or (None, 0)
        print(f"read: {count} row(s) from a {'replica' if in_recovery else 'primary'}")
    finally:
        try:
            with clusterdb.psycopg.connect("app", role="primary") as conn:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        finally:
            clusterdb.unregister("app")


if __name__ == "__main__":
    main(**settings_from_env())
