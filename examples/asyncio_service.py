"""An asyncio service on a clusterdb cluster: writes through psycopg_pool's
``AsyncConnectionPool`` on the primary, reads through ``await clusterdb.connect_async()``
from a replica when one answers.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/asyncio_service.py

``clusterdb.psycopg.async_pool_kwargs(cluster, role="primary")`` gives the pool a
``psycopg.AsyncConnection`` class whose ``connect()`` takes a cluster name (the pool calls it
for every new connection, and clusterdb races and hedges the nodes on the service's own event
loop, no thread) and the hooks that check and rebalance the pool's connections. The same
registration serves ``clusterdb.connect()`` too, and both share the nodes' state and stats.
"""

from __future__ import annotations

import asyncio
import os

from psycopg_pool import AsyncConnectionPool

import clusterdb
import clusterdb.psycopg


async def handle(pool: AsyncConnectionPool[clusterdb.psycopg.AsyncConnection], cluster: str) -> str:
    """One request: a write on the primary (from the pool), then a read (a connection of its
    own, from a replica if one answers)."""
    async with pool.connection() as conn:
        # txid_current() needs a writable server: it fails on a replica.
        await (await conn.execute("SELECT txid_current()")).fetchone()
    reader = await clusterdb.connect_async(cluster, role="prefer-replica")
    try:
        row = await (await reader.execute("SELECT pg_is_in_recovery()")).fetchone()
    finally:
        await reader.close()
    return "replica" if row and row[0] else "primary"


async def serve(cluster: str, requests: int) -> list[str]:
    pool = AsyncConnectionPool(
        **clusterdb.psycopg.async_pool_kwargs(cluster, role="primary"),
        min_size=2,
        max_size=4,
        timeout=10.0,
        open=False,
    )
    async with pool:
        await pool.wait(timeout=10.0)
        return await asyncio.gather(*(handle(pool, cluster) for _ in range(requests)))


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)  # None: the file named by $CLUSTERDB_CONFIG
    reads = asyncio.run(serve(cluster, 20))
    print(f"service: {len(reads)} requests answered, every write on the primary")
    print(f"service: reads from a {'replica' if 'replica' in reads else 'primary'}")
    snap = clusterdb.stats.snapshot(cluster)
    print(f"service: clusterdb connects {snap.connects}, failures {snap.failures}")
    clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
