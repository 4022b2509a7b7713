"""clusterdb.connect_async() against real PostgreSQL servers: hung and refusing nodes, many
connects on one loop, cancellation, pools, fork."""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time
from typing import Any

import psycopg
import pytest
from async_support import Ticker, sockets_towards, whoami
from connect_support import app_connections, registered, settled, wait_for
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import clusterdb
import clusterdb.psycopg
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


def test_a_hung_and_a_refusing_node_cost_neither_time_nor_the_loop(
    pg_cluster: PostgresCluster,
) -> None:
    live, hung, refusing = pg_cluster.primary, *pg_cluster.replicas
    hung.hang()  # SIGSTOP: its TCP connects complete, nothing answers
    refusing.kill()
    hosts = [hung, refusing, live]  # the dead first, for psycopg's attempts in order
    # Straight to the servers on both sides: the harness proxies are Python in this process,
    # and would weigh on the loop measured.
    params: dict[str, Any] = {
        "host": ",".join(n.host for n in hosts),
        "port": ",".join(str(n.port) for n in hosts),
        "user": pg_cluster.user,
        "password": pg_cluster.password,
        "dbname": pg_cluster.dbname,
        "connect_timeout": 2,
    }
    direct = pg_cluster.node_specs(via_proxy=False)
    with registered(pg_cluster, nodes=direct, connect_timeout=2) as name:
        to_live = {"host": live.host, "port": live.port}

        async def main() -> tuple[list[float], list[float], list[float], float]:
            ours: list[float] = []
            async with Ticker() as ticker:
                for _ in range(20):
                    started = time.monotonic()
                    conn = await clusterdb.connect_async(name)
                    ours.append(time.monotonic() - started)
                    assert isinstance(conn, psycopg.AsyncConnection)
                    assert await whoami(pg_cluster, conn) == live.name
                    await conn.close()
            alone: list[float] = []  # psycopg to the live node only: the floor, for scale
            for _ in range(20):
                started = time.monotonic()
                await (await psycopg.AsyncConnection.connect(**{**params, **to_live})).close()
                alone.append(time.monotonic() - started)
            theirs: list[float] = []
            for _ in range(2):
                started = time.monotonic()
                conn = await psycopg.AsyncConnection.connect(**params)
                theirs.append(time.monotonic() - started)
                await conn.close()
            return ours, alone, theirs, ticker.longest

        ours, alone, theirs, stall = asyncio.run(main())
        mine, floor, psycopgs = (statistics.median(x) for x in (ours, alone, theirs))
        print(
            f"\nconnect_async, 1 hung + 1 refusing: median {mine * 1e3:.1f} ms, max "
            f"{max(ours) * 1e3:.1f} ms; psycopg to the live node alone {floor * 1e3:.1f} ms; "
            f"psycopg AsyncConnection.connect(host=a,b,c): median {psycopgs:.2f} s "
            f"({psycopgs / mine:.0f}x); longest loop stall {stall * 1e3:.1f} ms"
        )
        assert mine < 0.25
        # What the hung and refusing nodes cost: psycopg waits out the hung one (its 2 s
        # minimum); clusterdb at least 100x less (its median over the live node's own).
        assert 100 * max(0.0, mine - floor) <= psycopgs - floor
        if floor < 0.015:  # a machine where one connect leaves room for 100x in 2 s
            assert psycopgs >= 100 * mine
        assert stall < 0.05
        snap = settled(name, timeout=10)
        assert snap.connects == 20 and snap.failures == 0


def test_200_connects_at_once_on_one_loop(pg_cluster: PostgresCluster) -> None:
    baseline = {n.name: app_connections(pg_cluster, n) for n in pg_cluster.nodes}
    # A burst of 200 connects makes every server slow for seconds (a backend forked and a
    # SCRAM exchange each, and hedges on top): the deadline is generous.
    with registered(pg_cluster, connect_timeout=30) as name:
        for _ in range(5):  # nodes known: the plans are best-first with hedges
            clusterdb.connect(name).close()
        settled(name)
        clusterdb.stats.reset(name)

        async def one() -> str:
            conn = await clusterdb.connect_async(name)
            try:
                return await whoami(pg_cluster, conn)
            finally:
                await conn.close()

        async def main() -> list[str]:
            return await asyncio.gather(*(one() for _ in range(200)))

        served = asyncio.run(main())
        assert len(served) == 200
        snap = settled(name, timeout=40)
        attempts = sum(n.connects + n.connect_errors for n in snap.nodes)
        print(
            f"\n200 at once: {attempts} attempts; (node, connects, discarded, errors): "
            f"{[(n.name, n.connects, n.discarded, n.connect_errors) for n in snap.nodes]}"
        )
        # Exact: every connect returned one connection, every other one was closed and
        # counted discarded, and no attempt is left pending.
        assert (snap.connects, snap.failures) == (200, 0)
        assert sum(n.connects - n.discarded for n in snap.nodes) == 200
        assert all(n.pending == 0 for n in snap.nodes)

        # Every connection, returned or discarded, was closed.
        def sessions() -> dict[str, int]:
            return {n.name: app_connections(pg_cluster, n) for n in pg_cluster.nodes}

        assert wait_for(lambda: sessions() == baseline)


def test_a_cancelled_connect_leaves_no_socket_and_no_task(pg_cluster: PostgresCluster) -> None:
    for node in pg_cluster.nodes:
        node.hang()
    direct = pg_cluster.node_specs(via_proxy=False)  # sockets straight to the hung servers
    with registered(pg_cluster, nodes=direct, connect_timeout=5) as name:

        async def main() -> None:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(clusterdb.connect_async(name), 0.1)
            assert time.monotonic() - started < 1.0
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert [sockets_towards(n.port) for n in pg_cluster.nodes] == [0, 0, 0]
            await asyncio.sleep(3)
            assert [sockets_towards(n.port) for n in pg_cluster.nodes] == [0, 0, 0]

        asyncio.run(main())
        snap = clusterdb.stats.snapshot(name)
        assert (snap.connects, snap.failures) == (0, 1)
        assert all(n.pending == 0 and n.connect_errors == 0 for n in snap.nodes)


def test_connect_and_connect_async_share_one_cluster(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:
        for _ in range(3):
            clusterdb.connect(name).close()

        async def main() -> None:
            for role in ("primary", "replica"):
                conn = await clusterdb.connect_async(name, role=role)
                row = await (await conn.execute("SELECT pg_is_in_recovery()")).fetchone()
                assert row == (role == "replica",)
                await conn.close()

        asyncio.run(main())
        snap = settled(name)
        assert (snap.connects, snap.failures) == (5, 0)
        assert {n.role for n in snap.nodes} == {"primary", "replica"}


def test_sqlalchemy_async_engine_and_psycopg_pool(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:

        async def creator() -> Any:
            return await clusterdb.connect_async(name, role="primary")

        async def main() -> None:
            engine = create_async_engine("postgresql+psycopg://", async_creator=creator)
            async with engine.connect() as conn:
                served = (await conn.execute(text(pg_cluster.WHOAMI_SQL))).scalar_one()
                assert served == pg_cluster.primary.name
            await engine.dispose()

            pool = AsyncConnectionPool(
                name,
                connection_class=clusterdb.psycopg.AsyncConnection,
                kwargs={"role": "replica"},
                min_size=2,
                open=False,
            )
            async with pool, pool.connection() as conn:
                assert isinstance(conn, clusterdb.psycopg.AsyncConnection)
                replica = await whoami(pg_cluster, conn)
                assert replica in {n.name for n in pg_cluster.replicas}

        asyncio.run(main())
        snap = settled(name)
        assert snap.failures == 0 and snap.connects >= 3


def test_connect_async_works_in_a_forked_child(pg_cluster: PostgresCluster) -> None:
    with registered(pg_cluster) as name:

        async def ask() -> str:
            conn = await clusterdb.connect_async(name)
            try:
                return await whoami(pg_cluster, conn)
            finally:
                await conn.close()

        assert asyncio.run(ask()) in {n.name for n in pg_cluster.nodes}
        pid = os.fork()
        if pid == 0:  # the child: a new loop, the parent's cluster
            try:
                served = asyncio.run(ask())
                snap = clusterdb.stats.snapshot(name)
                os._exit(0 if served and snap.connects == 2 and snap.failures == 0 else 1)
            except BaseException:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert clusterdb.stats.snapshot(name).connects == 1  # the child's connect is its own


def test_a_node_given_by_name_is_resolved_without_blocking(pg_cluster: PostgresCluster) -> None:
    named = [{**spec, "host": "localhost"} for spec in pg_cluster.node_specs()]
    with registered(pg_cluster, nodes=named) as name:

        async def main() -> str:
            conn = await clusterdb.connect_async(name, role="primary")
            try:
                return await whoami(pg_cluster, conn)
            finally:
                await conn.close()

        assert asyncio.run(main()) == pg_cluster.primary.name


def test_close_after_connect_async_leaves_no_task_and_no_clusterdb_thread(
    pg_cluster: PostgresCluster,
) -> None:
    hung = pg_cluster.nodes[2]
    hung.hang()  # attempts on it are abandoned: tasks that must end by themselves
    try:
        with registered(pg_cluster, connect_timeout=5.0, heartbeat=0.2) as name:

            async def main() -> list[str]:
                for _ in range(10):  # one after another: a burst would be its own test
                    conn = await clusterdb.connect_async(name)
                    await conn.close()

                def others() -> set[asyncio.Task[Any]]:
                    return asyncio.all_tasks() - {asyncio.current_task()}

                deadline = time.monotonic() + 20  # abandoned attempts end at their timeout
                while others() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                return [repr(t) for t in others()]

            assert asyncio.run(main()) == []
            assert clusterdb.stats.snapshot(name).connects == 10
            assert clusterdb.close(10) is True
            ours = [
                t.name
                for t in threading.enumerate()
                if t.name.startswith("clusterdb-") and not t.name.startswith("clusterdb-testing")
            ]
            assert ours == []
    finally:
        hung.resume()
