"""Galera causal reads on real servers (issue 17): with ``causal_reads`` every session
clusterdb opens has ``wsrep_sync_wait = 1``, so a read on one node sees a write committed on
another at once, even when that node has not applied it yet (it waits); without the option,
the same read on a node whose applier is held answers at once with the old data."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from connect_support import registered

import clusterdb
from clusterdb.testing import GaleraCluster, TestNode

pytestmark = pytest.mark.galera

OPTIONS = {"topology": "galera", "connect_timeout": 5.0, "ssl_disabled": True}


def count(conn: Any, table: str, key: int) -> int:
    cur = conn.cursor()
    cur.execute(f"SELECT COUNT(*) FROM {table} WHERE id = %s", (key,))
    (found,) = cur.fetchone()
    cur.close()
    return int(found)


def scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    cur.execute(sql)
    (value,) = cur.fetchone()
    cur.close()
    return value


@contextlib.contextmanager
def on_node(g: GaleraCluster, node: TestNode, **options: Any) -> Iterator[Any]:
    """A clusterdb connection (autocommit) to ``node``, from a cluster of that node alone."""
    spec = next(s for s in g.node_specs() if s["name"] == node.name)
    with registered(g, **OPTIONS, **options, nodes=[spec]) as name:
        conn = clusterdb.connect(name)
        conn.autocommit(True)
        with contextlib.closing(conn):
            yield conn


@contextlib.contextmanager
def table(g: GaleraCluster) -> Iterator[str]:
    name = f"causal_{uuid.uuid4().hex[:8]}"
    g.execute(g.nodes[0], f"CREATE TABLE {name} (id INT PRIMARY KEY)")
    try:
        yield name
    finally:
        g.execute(g.nodes[0], f"DROP TABLE IF EXISTS {name}")


def test_a_read_on_another_node_sees_a_write_at_once(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    a, b = g.nodes[0], g.nodes[1]
    with table(g) as t, on_node(g, b, causal_reads=True) as reader:
        assert scalar(reader, "SELECT @@SESSION.wsrep_sync_wait") == 1
        writer = pymysql.connect(**g.connect_kwargs(a), autocommit=True)
        with contextlib.closing(writer):
            for key in range(50):
                writer.cursor().execute(f"INSERT INTO {t} VALUES (%s)", (key,))
                assert count(reader, t, key) == 1, key


def test_a_read_waits_for_a_node_whose_applier_is_held(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    a, b = g.nodes[0], g.nodes[1]
    hold = 1.0
    with (
        table(g) as t,
        on_node(g, b, causal_reads=True) as causal,
        on_node(g, b) as plain,
    ):
        assert scalar(plain, "SELECT @@SESSION.wsrep_sync_wait") == 0
        # FLUSH TABLES WITH READ LOCK on a Galera node pauses its applier until UNLOCK TABLES
        # (the node desyncs meanwhile); other sessions may still read.
        lock = pymysql.connect(**g.connect_kwargs(b, via_proxy=False, admin=True))
        with contextlib.closing(lock):
            lock.cursor().execute("FLUSH TABLES WITH READ LOCK")
            g.execute(a, f"INSERT INTO {t} VALUES (1)")
            assert count(plain, t, 1) == 0  # b has not applied it: the old data, at once
            release = threading.Timer(hold, lambda: lock.cursor().execute("UNLOCK TABLES"))
            began = time.monotonic()
            release.start()
            try:
                seen = count(causal, t, 1)  # waits for b to catch up
            finally:
                release.join()
            waited = time.monotonic() - began
    assert seen == 1
    assert waited >= hold * 0.5, waited  # it could not answer before the applier went on
    print(f"\nthe causal read waited {waited:.2f} s for an applier held {hold} s")


def test_asyncio_sessions_have_it_too(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster

    async def sync_wait(name: str) -> Any:
        conn = await clusterdb.connect_async(name)
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT @@SESSION.wsrep_sync_wait")
                (value,) = await cur.fetchone()
                return value
        finally:
            conn.close()

    with registered(g, **OPTIONS, causal_reads=True) as name:
        assert asyncio.run(sync_wait(name)) == 1
