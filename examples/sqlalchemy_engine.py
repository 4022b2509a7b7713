"""SQLAlchemy on a clusterdb cluster: ``clusterdb.sqlalchemy.create_engine``.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/sqlalchemy_engine.py

The engine's pool opens its connections through ``clusterdb.connect(role="primary")`` (here, so
the engine can write) and keeps following the cluster: a pooled connection whose node is no
longer primary, down, drained or far slower is replaced at checkout; a read-only or
lost-connection error drops that connection and has clusterdb look for the new primary at
once; idle connections move, one at a time, to spread as clusterdb would spread new ones.
"""

from __future__ import annotations

import os

from sqlalchemy import text

import clusterdb
import clusterdb.sqlalchemy


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)  # None: the file named by $CLUSTERDB_CONFIG
    engine = clusterdb.sqlalchemy.create_engine(cluster, role="primary", pool_size=2)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE greeting (word text)"))
            conn.execute(text("INSERT INTO greeting VALUES (:w)"), [{"w": "hello"}, {"w": "hi"}])
            count = conn.execute(text("SELECT count(*) FROM greeting")).scalar_one()
            recovery = conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one()
            node = clusterdb.node_of(conn.connection.dbapi_connection)
        print(f"sqlalchemy: {count} rows written on the {'replica' if recovery else 'primary'}")
        print(f"sqlalchemy: that connection is on node {node.node if node else '?'}")
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        print(f"sqlalchemy: server version {version}")
        print(f"sqlalchemy: pool {engine.pool.status()}")
    finally:
        engine.dispose()
        clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
