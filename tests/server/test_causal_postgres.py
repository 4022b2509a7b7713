"""Read-your-writes tokens on real PostgreSQL servers (issue 15): 1 primary + 2 replicas, one
replica applying WAL 1 s late (``recovery_min_apply_delay``).

Each cycle writes a row on the primary, takes the token, connects with ``after=token`` and reads
the row back: never stale, nearly always on a replica. The same cycles without a token read
stale rows, which proves the check can fail.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterator
from typing import Any

import causal_support
import psycopg
import pytest
from causal_support import node_name
from connect_support import registered

import clusterdb
import clusterdb.psycopg
from clusterdb.core.causal import Token, parse_token
from clusterdb.core.description import WantedRole
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

CYCLES = 200
ASYNC_CYCLES = 50
DELAY = 1.0


@contextlib.contextmanager
def delayed_table(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh table, then the second replica applying WAL DELAY s late."""
    setup = (
        "CREATE TABLE {table} (id int PRIMARY KEY)",
        f"GRANT ALL ON {{table}} TO {pg_cluster.user}",
    )
    late = pg_cluster.replicas[1]
    with causal_support.delayed_table(pg_cluster, late, DELAY, setup, "DROP TABLE {table}") as t:
        yield t


def cycles(name: str, table: str, count: int, token: bool, **kw: Any) -> tuple[int, Counter]:
    """``count`` write-then-read cycles: (stale reads, nodes that served the reads). Ids
    go on from the table's largest."""
    stale = 0
    served: Counter = collections.Counter()
    with contextlib.closing(clusterdb.connect(name, role="primary", autocommit=True)) as writer:
        row = writer.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()
        first = 1 + (row[0] if row else 0)
        for i in range(first, first + count):
            writer.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
            after = clusterdb.causal_token(writer) if token else None
            with contextlib.closing(clusterdb.connect(name, after=after, **kw)) as reader:
                row = reader.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (i,)).fetchone()
                served[node_name(reader)] += 1
            stale += row is None or row[0] != 1
    return stale, served


Counter = collections.Counter[str]


def test_a_token_gives_no_stale_read_and_reads_stay_on_replicas(
    pg_cluster: PostgresCluster,
) -> None:
    replicas = {n.name for n in pg_cluster.replicas}
    with delayed_table(pg_cluster) as table, registered(pg_cluster) as name:
        stale, served = cycles(name, table, CYCLES, token=True, role="replica")
        on_replicas = sum(served[n] for n in replicas) / CYCLES
        print(f"\nwith tokens: {stale} stale of {CYCLES}, served {dict(served)}")
        assert stale == 0, served
        assert on_replicas >= 0.9, served

        # The control: without a token the late replica serves stale rows.
        stale_without, served_without = cycles(name, table, CYCLES, token=False, role="replica")
        print(f"without: {stale_without} stale of {CYCLES}, served {dict(served_without)}")
        assert stale_without > 0, served_without
        assert served_without[pg_cluster.replicas[1].name] > 0


def test_the_wait_the_fallback_and_the_refusal_are_counted(pg_cluster: PostgresCluster) -> None:
    fast, late = pg_cluster.replicas
    with delayed_table(pg_cluster) as table, registered(pg_cluster, causal_wait=0.2) as name:
        clusterdb.drain(name, fast.name)  # only the late replica is left for reads
        with contextlib.closing(clusterdb.connect(name, role="primary", autocommit=True)) as w:
            w.execute(f"INSERT INTO {table} VALUES (1)")
            token = clusterdb.causal_token(w)
        # prefer-replica: the late replica does not apply it within 0.2 s -> the primary.
        with contextlib.closing(clusterdb.connect(name, role="prefer-replica", after=token)) as c:
            assert node_name(c) == pg_cluster.primary.name
            assert c.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
        # replica: refused, and the error names the token and the node.
        with pytest.raises(clusterdb.NoSuitableNode) as caught:
            clusterdb.connect(name, role="replica", after=token)
        assert isinstance(caught.value, psycopg.OperationalError)
        assert token in str(caught.value) and late.name in str(caught.value)
        stats = clusterdb.stats.snapshot(name)
        assert (stats.causal_waits, stats.causal_fallbacks) == (2, 2)
    # With a wait longer than the delay, the late replica serves once it has applied it.
    with delayed_table(pg_cluster) as table, registered(pg_cluster, causal_wait=10.0) as name:
        clusterdb.drain(name, fast.name)
        with contextlib.closing(clusterdb.connect(name, role="primary", autocommit=True)) as w:
            w.execute(f"INSERT INTO {table} VALUES (1)")
            token = clusterdb.causal_token(w)
        with contextlib.closing(clusterdb.connect(name, role="replica", after=token)) as c:
            assert node_name(c) == late.name
            assert c.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
        stats = clusterdb.stats.snapshot(name)
        assert (stats.causal_waits, stats.causal_fallbacks) == (1, 0)


def test_the_monitor_reads_replicas_positions_and_old_tokens_need_no_question(
    pg_cluster: PostgresCluster,
) -> None:
    with registered(pg_cluster) as name:
        with contextlib.closing(clusterdb.connect(name, role="primary")) as w:
            token = parse_token(clusterdb.causal_token(w))
        pg_cluster.wait_caught_up()
        snap = clusterdb.probe(name)
        applied = {n.name: n.applied for n in snap.nodes}
        assert applied[pg_cluster.primary.name] is None, applied
        for replica in pg_cluster.replicas:
            position = applied[replica.name]
            assert position is not None and "/" in position, applied
        with contextlib.closing(clusterdb.connect(name, role="replica", after=str(token))) as c:
            assert node_name(c) in {n.name for n in pg_cluster.replicas}


def test_a_token_of_another_cluster_is_a_clear_error(pg_cluster: PostgresCluster) -> None:
    with causal_support.two_registrations(pg_cluster) as (one, other, token):
        with pytest.raises(clusterdb.CausalTokenError, match=f"token of cluster '{one}'"):
            clusterdb.connect(other, role="replica", after=token)
        # Same name, another PostgreSQL system (its servers re-initialised): caught on the
        # replica's first answer, which carries the system identifier.
        parsed = parse_token(token)
        foreign = str(Token(other, "pg", parsed.position, "1234567890"))
        with pytest.raises(clusterdb.CausalTokenError, match="system identifier"):
            clusterdb.connect(other, role="replica", after=foreign)
        with pytest.raises(clusterdb.CausalTokenError, match="not a clusterdb token"):
            clusterdb.connect(other, role="replica", after="0/16B3D48")
        with pytest.raises(clusterdb.InterfaceError, match="not a connection clusterdb"):
            clusterdb.causal_token(object())


def test_async_tokens_give_no_stale_read(pg_cluster: PostgresCluster) -> None:
    replicas = {n.name for n in pg_cluster.replicas}

    async def run(name: str, table: str) -> tuple[int, Counter]:
        stale = 0
        served: Counter = collections.Counter()
        writer = await clusterdb.connect_async(name, role="primary", autocommit=True)
        async with writer:
            for i in range(ASYNC_CYCLES):
                await writer.execute(f"INSERT INTO {table} VALUES (%s)", (i,))
                token = await clusterdb.causal_token_async(writer)
                with pytest.raises(clusterdb.InterfaceError, match="causal_token_async"):
                    clusterdb.causal_token(writer)
                reader = await clusterdb.connect_async(name, role="replica", after=token)
                async with reader:
                    cur = await reader.execute(f"SELECT count(*) FROM {table} WHERE id = %s", (i,))
                    row = await cur.fetchone()
                    served[node_name(reader)] += 1
                stale += row is None or row[0] != 1
        return stale, served

    with delayed_table(pg_cluster) as table, registered(pg_cluster) as name:
        stale, served = asyncio.run(run(name, table))
        print(f"\nasync with tokens: {stale} stale of {ASYNC_CYCLES}, served {dict(served)}")
        assert stale == 0, served
        assert sum(served[n] for n in replicas) / ASYNC_CYCLES >= 0.9, served


def test_every_role_reads_the_write_and_gets_an_idle_connection(
    pg_cluster: PostgresCluster,
) -> None:
    with delayed_table(pg_cluster) as table, registered(pg_cluster) as name:
        with contextlib.closing(clusterdb.connect(name, role="primary")) as w:
            w.execute(f"INSERT INTO {table} VALUES (1)")
            w.commit()
            token = clusterdb.causal_token(w)
            assert w.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        roles: tuple[WantedRole, ...] = ("any", "primary", "replica", "prefer-replica")
        for role in roles:
            with contextlib.closing(clusterdb.connect(name, role=role, after=token)) as c:
                # The question on the new connection left no transaction open.
                assert c.info.transaction_status == psycopg.pq.TransactionStatus.IDLE, role
                assert c.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,), role
            with contextlib.closing(clusterdb.psycopg.connect(name, role=role, after=token)) as c:
                assert c.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,), role
