"""clusterdb.connect_async() against real MariaDB servers: a cluster registered with
driver="pymysql" answers through asyncmy, shares its state with connect(), and serves
SQLAlchemy's async engine."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pymysql.cursors
import pytest
from async_support import close, sockets_towards, whoami
from connect_support import registered, settled
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import clusterdb
from clusterdb.testing.mariadb import MariaDBCluster

pytestmark = pytest.mark.mariadb


def test_a_pymysql_cluster_answers_through_asyncmy(mariadb_cluster: MariaDBCluster) -> None:
    primary, replica = mariadb_cluster.nodes
    with registered(
        mariadb_cluster, ssl_disabled=True, cursorclass=pymysql.cursors.DictCursor
    ) as name:
        sync = clusterdb.connect(name, role="primary")
        sync.close()

        async def main() -> None:
            conn = await clusterdb.connect_async(name, role="primary")
            assert type(conn).__module__.startswith("asyncmy")
            assert await whoami(mariadb_cluster, conn) == primary.name
            async with conn.cursor() as cur:  # the registration's cursor class, asyncmy's
                await cur.execute("SELECT 1 AS one")
                assert await cur.fetchone() == {"one": 1}
            await close(conn)
            conn = await clusterdb.connect_async(name, role="replica")
            assert await whoami(mariadb_cluster, conn) == replica.name
            await close(conn)

        asyncio.run(main())
        snap = settled(name)
        assert (snap.connects, snap.failures) == (3, 0)
        assert {n.name: n.role for n in snap.nodes} == {
            primary.name: "primary",
            replica.name: "replica",
        }


def test_every_node_silent_raises_asyncmys_error_at_the_deadline(
    mariadb_cluster: MariaDBCluster,
) -> None:
    from asyncmy.errors import OperationalError

    for node in mariadb_cluster.nodes:
        node.proxy.set_mode("deaf")
    with registered(mariadb_cluster) as name:

        async def main() -> None:
            started = time.monotonic()
            with pytest.raises(clusterdb.AllNodesFailed) as info:
                await clusterdb.connect_async(name, connect_timeout=0.3)
            assert 0.3 <= time.monotonic() - started < 3.0
            assert isinstance(info.value, OperationalError)  # the asyncio driver's own
            for node in mariadb_cluster.nodes:
                assert f"{node.name}: no answer within 0.3 s (connect_timeout)" in str(info.value)
            await asyncio.sleep(0.2)  # the attempts end just after the deadline
            assert [sockets_towards(n.proxy_port) for n in mariadb_cluster.nodes] == [0, 0]

        asyncio.run(main())
        snap = settled(name, timeout=2)
        assert all(n.connect_errors == 1 and n.state == "down" for n in snap.nodes)


def test_sqlalchemy_async_engine_over_asyncmy(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster, ssl_disabled=True) as name:

        async def creator() -> Any:
            return await clusterdb.connect_async(name, role="primary")

        async def main() -> None:
            engine = create_async_engine("mysql+asyncmy://", async_creator=creator)
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE IF NOT EXISTS async_t (v INT)"))
                await conn.execute(text("INSERT INTO async_t VALUES (1), (2)"))
                count = (await conn.execute(text("SELECT count(*) FROM async_t"))).scalar_one()
                assert count >= 2
                await conn.execute(text("DROP TABLE async_t"))
            await engine.dispose()

        asyncio.run(main())
        snap = settled(name)
        assert snap.failures == 0 and snap.connects >= 1


def test_a_favourite_gone_silent_is_handed_to_a_task_and_hedged(
    mariadb_cluster: MariaDBCluster,
) -> None:
    with registered(mariadb_cluster, ssl_disabled=True, connect_timeout=2) as name:

        async def main() -> str:
            for _ in range(20):  # the nodes learnt: plans best-first, begun in this task
                await close(await clusterdb.connect_async(name))
            favourite = min(clusterdb.stats.snapshot(name).nodes, key=lambda n: n.latency_ms or 0.0)
            silent = mariadb_cluster.node(favourite.name)
            silent.proxy.set_mode("deaf")  # accepts, never greets
            # Plans draw among the nodes within the latency window: connect until one has
            # begun on the silent favourite (its attempt then hangs in a task, pending).
            for _ in range(20):
                started = time.monotonic()
                conn = await clusterdb.connect_async(name)
                assert time.monotonic() - started < 1.0  # the hedge delay, not the 2 s deadline
                assert await whoami(mariadb_cluster, conn) != silent.name
                await close(conn)
                if clusterdb.stats.snapshot(name).node(silent.name).pending:
                    break
            else:
                pytest.fail(f"20 connects and none began on the favourite {silent.name}")
            await asyncio.sleep(2.5)  # the silent attempt ends at the deadline, in its task
            assert sockets_towards(silent.proxy_port) == 0
            return silent.name

        silent = asyncio.run(main())
        snap = settled(name, timeout=5)
        assert snap.failures == 0
        assert all(n.pending == 0 for n in snap.nodes)
        assert (snap.node(silent).connect_errors, snap.node(silent).state) == (1, "down")
        assert "no greeting from the server" in (snap.node(silent).last_error or "")


def test_a_connection_won_by_a_pending_attempt_stays_usable(
    mariadb_cluster: MariaDBCluster,
) -> None:
    # Regression (found by the chaos suite): a pending attempt's clean-up ran when its task
    # ended, won or not, and closed the socket under asyncmy's live transport; the winner's
    # first query then waited forever, and the loop refused the next socket given the same
    # descriptor number ("File descriptor N is used by transport").
    with registered(mariadb_cluster, ssl_disabled=True, connect_timeout=5) as name:

        async def main() -> int:
            for _ in range(10):  # the nodes learnt: sub-millisecond hedge delays
                await close(await clusterdb.connect_async(name))
            for node in mariadb_cluster.nodes:
                node.proxy.set_delay(0.2)  # every greeting now comes after the hedge delay
            for _ in range(5):
                conn = await clusterdb.connect_async(name)
                async with asyncio.timeout(10):
                    assert await whoami(mariadb_cluster, conn) in ("mdb0", "mdb1")
                await close(conn)
            return sum(n.discarded for n in clusterdb.stats.snapshot(name).nodes)

        discarded = asyncio.run(main())
        assert discarded > 0  # attempts were pending and raced, the path under test


def test_a_connect_cancelled_at_any_point_of_its_first_attempt_leaves_nothing(
    mariadb_cluster: MariaDBCluster,
) -> None:
    # The first attempt runs in a task of its own from the TCP connect on: cancelled before
    # that task ran, while asyncmy holds the socket, or just after it made its connection,
    # the caller's cancellation must close what it opened and count it as abandoned.
    with registered(mariadb_cluster, ssl_disabled=True, connect_timeout=2) as name:
        ports = [node.proxy_port for node in mariadb_cluster.nodes]

        async def main() -> tuple[int, int]:
            for _ in range(10):  # the nodes learnt: plans best-first, begun in this task
                await close(await clusterdb.connect_async(name))
            made = cancelled = 0
            for i in range(120):
                # 50 us to 10 ms: before, during and after the handshake (through the proxy,
                # some 1-2 ms). Never 0: wait_for() then cancels a coroutine never begun.
                delay = (i % 40 + 1) * 250e-6 - 200e-6
                try:
                    conn = await asyncio.wait_for(clusterdb.connect_async(name), delay)
                except TimeoutError:
                    cancelled += 1
                    continue
                made += 1
                await close(conn)
            await asyncio.sleep(0.2)  # transports closing finish on the loop's next turns
            return made, cancelled

        made, cancelled = asyncio.run(main())
        assert made > 0 and cancelled > 0, (made, cancelled)
        assert sum(sockets_towards(port) for port in ports) == 0
        snap = settled(name, timeout=5)
        assert all(n.pending == 0 for n in snap.nodes)
        assert snap.failures == cancelled  # a cancelled connect counts as failed, no node's fault
        assert all(n.connect_errors == 0 and n.state == "up" for n in snap.nodes)
