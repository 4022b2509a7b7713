"""SQLAlchemy on a clusterdb cluster: ``create_engine(..., creator=...)``.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/sqlalchemy_creator.py

SQLAlchemy's pool calls ``creator`` whenever it needs a new connection; clusterdb picks the
node (here: the primary, so the engine can write) and returns psycopg's own connection, which
the ``postgresql+psycopg`` dialect uses as if it had opened it itself.
"""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

import clusterdb
import clusterdb.psycopg


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)  # None: the file named by $CLUSTERDB_CONFIG
    engine = create_engine(
        "postgresql+psycopg://",  # the dialect only: the address comes from clusterdb
        creator=lambda: clusterdb.psycopg.connect(cluster, role="primary"),
        pool_size=2,
        pool_pre_ping=True,  # a pooled connection to a node that died is replaced, not used
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TEMPORARY TABLE greeting (word text)"))
            conn.execute(text("INSERT INTO greeting VALUES (:w)"), [{"w": "hello"}, {"w": "hi"}])
            count = conn.execute(text("SELECT count(*) FROM greeting")).scalar_one()
            recovery = conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one()
        print(f"sqlalchemy: {count} rows written on the {'replica' if recovery else 'primary'}")
        with engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        print(f"sqlalchemy: server version {version}")
        print(f"sqlalchemy: pool {engine.pool.status()}")
    finally:
        engine.dispose()
        clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
