"""psycopg_pool filled by clusterdb: the pool's ``conninfo`` is a cluster name.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/psycopg_pool_fed.py

``clusterdb.psycopg.pool_kwargs("main", role="primary")`` gives the pool its conninfo (the
cluster's name), ``connection_class`` (a ``psycopg.Connection`` whose ``connect()`` goes
through ``clusterdb.connect()``: clusterdb picks the node; the pool's own timeout becomes
clusterdb's overall ``connect_timeout``), its ``kwargs`` (``role="primary"``, so the pool can
write) and two hooks: ``check`` hands out only connections clusterdb would still choose for
that role (no I/O), ``reset`` moves idle connections between nodes at return (rebalancing;
with one primary, nothing to move). The connections' cursors report errors to clusterdb, so
a demoted or lost primary is noticed and the new one looked for at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from psycopg_pool import ConnectionPool

import clusterdb
import clusterdb.psycopg


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)  # None: the file named by $CLUSTERDB_CONFIG
    with ConnectionPool(
        **clusterdb.psycopg.pool_kwargs(cluster, role="primary"),
        min_size=2,
        max_size=4,
        timeout=10.0,
    ) as pool:
        pool.wait(timeout=10.0)

        def ask(_: int) -> bool:
            with pool.connection() as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                assert row is not None
                return bool(row[0])

        with ThreadPoolExecutor(max_workers=4) as workers:
            in_recovery = list(workers.map(ask, range(8)))
        print(f"pool: {len(in_recovery)} queries answered")
        print(f"pool: on the {'replica' if any(in_recovery) else 'primary'}")
        opened = pool.get_stats().get("connections_num", 0)
        balance = clusterdb.psycopg.balance_of(pool)
        assert balance is not None
        print(f"pool: connections per node {sorted(balance.counts.items())}")
    # Every connection the pool opened came from one clusterdb.connect() call.
    calls = clusterdb.stats.snapshot(cluster).connects
    print(f"pool: opened {opened} connections, clusterdb connect() calls: {calls}")
    clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
