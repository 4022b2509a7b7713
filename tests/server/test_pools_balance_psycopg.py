"""psycopg_pool pools that follow the cluster's node set (issue 13), built with
clusterdb.psycopg.pool_kwargs / async_pool_kwargs: a replica killed and restarted under 6
readers loses its pooled connections with at most one failed read each and regains its share
of reads gradually (moves at return, through ``reset=``), with few reconnects; a drained node
loses the pool's connections within one checkout cycle. The SQLAlchemy version is
test_pools_balance.py; both run the same PoolBalance."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from connect_support import registered
from pools_support import Workload, kill_and_restart, share_on, whoami_of
from psycopg_pool import AsyncConnectionPool, ConnectionPool

import clusterdb
import clusterdb.psycopg
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

POOL = 6


def _held_nodes(pool: ConnectionPool[Any], harness: PostgresCluster) -> list[str]:
    """Check the whole pool out at once: the node of each connection."""
    held = [pool.getconn(timeout=20.0) for _ in range(POOL)]
    try:
        return [whoami_of(harness, c.cursor()) for c in held]
    finally:
        for conn in held:
            conn.rollback()
            pool.putconn(conn)


def test_a_restarted_replica_regains_its_share_of_psycopg_pool_reads(
    pg_cluster: PostgresCluster,
) -> None:
    victim = pg_cluster.replicas[0]
    direct = pg_cluster.node_specs(via_proxy=False)  # see test_pools_balance.py: no proxies
    with registered(pg_cluster, monitor=True, nodes=direct) as name:
        kwargs = clusterdb.psycopg.pool_kwargs(name, role="replica")
        with ConnectionPool(**kwargs, min_size=POOL, max_size=POOL, timeout=20.0) as pool:
            pool.wait(timeout=20.0)
            balance = clusterdb.psycopg.balance_of(pool)
            assert balance is not None and sum(balance.counts.values()) == POOL

            def read(thread: int, key: int) -> str:
                with pool.connection() as conn:
                    return whoami_of(pg_cluster, conn.cursor())

            with Workload(read, threads=POOL, pause=0.01) as work:
                work.wait_successes(200)
                on_victim = balance.counts.get(victim.name, 0)
                opened_before = balance.opened_total
                killed, restarted = kill_and_restart(victim)
            reconnects = balance.opened_total - opened_before
            counts = balance.counts
        failed = [o for o in work.outcomes if not o.ok and o.at > killed]
        assert len(failed) <= on_victim, (on_victim, [o.error for o in failed[:3]])
        share, reads = share_on(work, victim.name, restarted + 4.0, restarted + 12.0)
        assert share >= 0.30, (share, reads, counts)
        assert reconnects <= 3 * POOL, reconnects
        assert balance.moved >= 1
        assert sum(balance.counts.values()) == 0  # the pool closed: every connection counted out


def test_drain_moves_the_psycopg_pool_off_the_node_within_one_checkout_cycle(
    pg_cluster: PostgresCluster,
) -> None:
    with registered(pg_cluster, monitor=True) as name:
        kwargs = clusterdb.psycopg.pool_kwargs(name)
        with ConnectionPool(**kwargs, min_size=POOL, max_size=POOL, timeout=20.0) as pool:
            pool.wait(timeout=20.0)
            nodes = _held_nodes(pool, pg_cluster)
            busiest = max(set(nodes), key=nodes.count)
            clusterdb.drain(name, busiest)
            assert busiest not in _held_nodes(pool, pg_cluster)  # one checkout each
            balance = clusterdb.psycopg.balance_of(pool)
            assert balance is not None
            assert balance.counts.get(busiest, 0) == 0, balance.counts
            clusterdb.undrain(name, busiest)


def test_async_pool_drain_and_rebalance(pg_cluster: PostgresCluster) -> None:
    """The asyncio pool: a drained node's connections leave it within one checkout cycle, and
    once undrained the node regains connections through moves at return."""
    with registered(pg_cluster, monitor=True) as name:

        async def held(pool: AsyncConnectionPool[Any]) -> list[str]:
            conns = [await pool.getconn(timeout=20.0) for _ in range(POOL)]
            try:
                nodes = []
                for conn in conns:
                    cur = await conn.execute(pg_cluster.WHOAMI_SQL)
                    row = await cur.fetchone()
                    assert row is not None
                    nodes.append(str(row[0]))
                    await conn.rollback()
                return nodes
            finally:
                for conn in conns:
                    await pool.putconn(conn)

        async def main() -> tuple[list[str], str, list[str], list[str], Any]:
            kwargs = clusterdb.psycopg.async_pool_kwargs(name)
            pool = AsyncConnectionPool(
                **kwargs, min_size=POOL, max_size=POOL, timeout=20.0, open=False
            )
            await pool.open(wait=True, timeout=20.0)
            try:
                before = await held(pool)
                busiest = max(set(before), key=before.count)
                clusterdb.drain(name, busiest)
                drained = await held(pool)
                clusterdb.undrain(name, busiest)
                after: list[str] = []
                deadline = time.monotonic() + 15.0
                while busiest not in after and time.monotonic() < deadline:
                    after = await held(pool)
                    await asyncio.sleep(0.3)
                return before, busiest, drained, after, clusterdb.psycopg.balance_of(pool)
            finally:
                await pool.close()

        before, busiest, drained, after, balance = asyncio.run(main())
        assert busiest not in drained, (before, drained)
        assert busiest in after, (drained, after, balance.counts)
        assert balance.moved >= 1
        assert sum(balance.counts.values()) == 0
