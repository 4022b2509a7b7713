"""Pools that follow the cluster's node set (issue 13), on PostgreSQL through
clusterdb.sqlalchemy: a replica killed and restarted under 6 readers loses its pooled
connections with at most one failed read each and regains its share of reads gradually, with
few reconnects; a drained node loses the pool's connections within one checkout cycle."""

from __future__ import annotations

import time

import pytest
import sqlalchemy
from connect_support import registered
from pools_support import Workload, kill_and_restart, share_on

import clusterdb
import clusterdb.sqlalchemy
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

POOL = 6


def _held_nodes(engine: sqlalchemy.Engine, harness: PostgresCluster) -> list[str]:
    """Check the whole pool out at once: the node of each connection."""
    held = [engine.connect() for _ in range(POOL)]
    try:
        return [str(c.execute(sqlalchemy.text(harness.WHOAMI_SQL)).scalar_one()) for c in held]
    finally:
        for conn in held:
            conn.close()


def test_a_restarted_replica_regains_its_share_of_pooled_reads(pg_cluster: PostgresCluster) -> None:
    victim = pg_cluster.replicas[0]
    # Straight to the servers: the harness's proxies are threads of this process, and behind
    # six busy readers each proxied round trip waits for the GIL, which made connect times
    # (what shares are weighed by) wander between 10 and 75 ms.
    direct = pg_cluster.node_specs(via_proxy=False)
    with registered(pg_cluster, monitor=True, nodes=direct) as name:
        engine = clusterdb.sqlalchemy.create_engine(
            name, role="replica", pool_size=POOL, max_overflow=0
        )
        watch = clusterdb.sqlalchemy.watch_of(engine)
        assert watch is not None
        opened: list[float] = []
        sqlalchemy.event.listen(engine, "connect", lambda *_: opened.append(time.monotonic()))
        whoami = sqlalchemy.text(pg_cluster.WHOAMI_SQL)

        def read(thread: int, key: int) -> str:
            with engine.connect() as conn:
                return str(conn.execute(whoami).scalar_one())

        try:
            with Workload(read, threads=POOL, pause=0.01) as work:
                work.wait_successes(200)
                on_victim = watch.counts.get(victim.name, 0)
                killed, restarted = kill_and_restart(victim)
            reconnects = sum(1 for t in opened if t > killed)
        finally:
            engine.dispose()
        failed = [o for o in work.outcomes if not o.ok and o.at > killed]
        assert len(failed) <= on_victim, (on_victim, [o.error for o in failed[:3]])
        share, reads = share_on(work, victim.name, restarted + 4.0, restarted + 12.0)
        assert share >= 0.30, (share, reads, watch.counts)
        assert reconnects <= 3 * POOL, reconnects
        assert watch.moved >= 1


def test_drain_moves_the_pool_off_the_node_within_one_checkout_cycle(
    pg_cluster: PostgresCluster,
) -> None:
    with registered(pg_cluster, monitor=True) as name:
        engine = clusterdb.sqlalchemy.create_engine(name, pool_size=POOL, max_overflow=0)
        try:
            nodes = _held_nodes(engine, pg_cluster)
            busiest = max(set(nodes), key=nodes.count)
            clusterdb.drain(name, busiest)
            assert busiest not in _held_nodes(engine, pg_cluster)  # one checkout each
            clusterdb.undrain(name, busiest)
        finally:
            engine.dispose()
