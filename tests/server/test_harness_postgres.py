"""The PostgreSQL harness does what it says, against real servers."""

from __future__ import annotations

import select
import socket
import statistics
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest

from clusterdb.testing import PostgresCluster, TestNode

pytestmark = pytest.mark.postgres


def new_table(pg: PostgresCluster) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    pg.execute(pg.primary, f"CREATE TABLE {name} (id int PRIMARY KEY, v text)")
    return name


def rows(pg: PostgresCluster, node: TestNode, table: str) -> list[tuple[object, ...]]:
    return pg.execute(node, f"SELECT id, v FROM {table} ORDER BY id", admin=False)


def whoami(pg: PostgresCluster, node: TestNode, via_proxy: bool = True) -> str:
    with psycopg.connect(**pg.connect_kwargs(node, via_proxy=via_proxy), connect_timeout=5) as c:
        row = c.execute(pg.WHOAMI_SQL).fetchone()
    assert row is not None
    return str(row[0])


def refuses(node: TestNode) -> bool:
    try:
        socket.create_connection((node.host, node.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_shape_identity_and_app_user(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    assert [n.name for n in pg.nodes] == ["pg0", "pg1", "pg2"]
    assert pg.primary is pg.nodes[0] and pg.replicas == pg.nodes[1:]
    assert pg.driver == "psycopg"
    specs = pg.node_specs()
    assert specs == [{"name": n.name, "host": "127.0.0.1", "port": n.proxy_port} for n in pg.nodes]
    for node in pg.nodes:
        assert whoami(pg, node) == node.name  # through the proxy, as the app user
        assert whoami(pg, node, via_proxy=False) == node.name
    in_recovery = [pg.execute(n, "SELECT pg_is_in_recovery()")[0][0] for n in pg.nodes]
    assert in_recovery == [False, True, True]
    (is_super,) = pg.execute(
        pg.primary, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", admin=False
    )[0]
    assert is_super is False
    assert pg.password not in repr(pg) and pg.admin_password not in repr(pg)


def test_row_written_on_primary_reaches_every_replica(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    table = new_table(pg)
    pg.execute(pg.primary, f"INSERT INTO {table} VALUES (1, 'hello')", admin=False)
    pg.wait_caught_up()
    for node in pg.replicas:
        assert rows(pg, node, table) == [(1, "hello")]


def test_replica_refuses_writes(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    table = new_table(pg)
    pg.wait_caught_up()
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg.execute(pg.replicas[0], f"INSERT INTO {table} VALUES (1, 'x')", admin=False)


def test_kill_makes_the_port_refuse_and_start_brings_it_back(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    node = pg.replicas[0]
    node.kill()
    assert not node.running
    assert refuses(node)
    node.start()
    assert node.running
    assert whoami(pg, node) == node.name


def test_killed_primary_comes_back_and_replicas_reconnect(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    table = new_table(pg)
    pg.primary.kill()
    assert refuses(pg.primary)
    pg.primary.start()
    pg.execute(pg.primary, f"INSERT INTO {table} VALUES (1, 'after restart')")
    pg.wait_caught_up()
    assert all(rows(pg, n, table) == [(1, "after restart")] for n in pg.replicas)


def test_stop_start_restart(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    node = pg.replicas[1]
    node.stop()
    assert not node.running and refuses(node)
    node.start()
    assert whoami(pg, node) == node.name
    node.restart()
    assert node.running and whoami(pg, node) == node.name


def test_hang_accepts_tcp_but_nothing_answers_until_resume(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    node = pg.replicas[0]
    existing = psycopg.connect(**pg.connect_kwargs(node, via_proxy=False), autocommit=True)
    node.hang()
    try:
        socket.create_connection((node.host, node.port), timeout=2).close()  # kernel accepts
        started = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**pg.connect_kwargs(node, via_proxy=False), connect_timeout=2)
        assert 1.5 < time.monotonic() - started < 10
        # Connections opened before the hang stall too: their backend is stopped as well.
        existing.pgconn.send_query(b"SELECT 1")
        existing.pgconn.flush()
        readable, _, _ = select.select([existing.pgconn.socket], [], [], 1.0)
        assert readable == []
    finally:
        node.resume()
    readable, _, _ = select.select([existing.pgconn.socket], [], [], 5.0)
    assert readable != []
    existing.close()
    assert whoami(pg, node) == node.name


def test_promote_takes_writes_other_replica_follows_heal_restores(
    pg_cluster: PostgresCluster,
) -> None:
    pg = pg_cluster
    old, new, other = pg.nodes
    proxy_ports = [n.proxy_port for n in pg.nodes]
    table = new_table(pg)
    pg.execute(pg.primary, f"INSERT INTO {table} VALUES (1, 'before')")
    pg.wait_caught_up()

    old.kill()
    pg.promote(new)
    assert pg.primary is new and new.role == "primary"
    assert old.role == "replica" and other.role == "replica"
    assert pg.execute(new, "SELECT pg_is_in_recovery()") == [(False,)]
    pg.execute(new, f"INSERT INTO {table} VALUES (2, 'after')", admin=False)
    pg.wait_caught_up()
    assert rows(pg, other, table) == [(1, "before"), (2, "after")]

    pg.heal()  # rebuilds the original shape from the new primary's data
    assert pg.primary is old and [n.role for n in pg.nodes] == ["primary", "replica", "replica"]
    assert [n.proxy_port for n in pg.nodes] == proxy_ports
    pg.execute(old, f"INSERT INTO {table} VALUES (3, 'healed')", admin=False)
    pg.wait_caught_up()
    for node in pg.nodes:
        assert whoami(pg, node) == node.name
        assert rows(pg, node, table) == [(1, "before"), (2, "after"), (3, "healed")]


def test_promote_with_running_primary_fences_it(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    old, new, other = pg.nodes
    table = new_table(pg)
    pg.wait_caught_up()
    pg.promote(new)
    assert not old.running  # never two primaries
    pg.execute(new, f"INSERT INTO {table} VALUES (1, 'x')")
    pg.wait_caught_up()
    assert rows(pg, other, table) == [(1, "x")]
    # The cleanly stopped old primary can follow the new one.
    old.start()
    pg.wait_caught_up()
    assert rows(pg, old, table) == [(1, "x")]
    assert pg.execute(old, "SELECT pg_is_in_recovery()") == [(True,)]


def median_query_time(conn: psycopg.Connection[tuple[object, ...]], n: int = 20) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_proxy_delay_deaf_and_refuse(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    node = pg.replicas[0]
    with psycopg.connect(**pg.connect_kwargs(node), autocommit=True) as conn:
        base = median_query_time(conn)
        node.proxy.set_delay(0.020)
        delayed = median_query_time(conn)
    # The delay applies in each direction: a query round trip gains about 40 ms.
    assert 0.035 <= delayed - base < 0.2, (base, delayed)

    node.proxy.set_delay(0)
    node.proxy.set_mode("deaf")
    socket.create_connection(("127.0.0.1", node.proxy_port), timeout=2).close()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**pg.connect_kwargs(node), connect_timeout=2)

    node.proxy.set_mode("refuse")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", node.proxy_port), timeout=2)
    assert whoami(pg, node, via_proxy=False) == node.name  # the server itself is fine


def test_delayed_replica_lags_then_catches_up(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    lagging, other = pg.replicas
    table = new_table(pg)
    pg.wait_caught_up()
    pg.set_replication_delay(lagging, 5)
    pg.execute(pg.primary, f"INSERT INTO {table} VALUES (1, 'late')")
    written = time.monotonic()
    wait_for(lambda: rows(pg, other, table) == [(1, "late")], timeout=5)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - written)))
    assert rows(pg, lagging, table) == []
    pg.set_replication_delay(lagging, 0)
    pg.wait_caught_up(timeout=3)  # well before the 5 s delay would have run out
    assert time.monotonic() - written < 4.5
    assert rows(pg, lagging, table) == [(1, "late")]


def test_heal_is_cheap_when_nothing_broke(pg_cluster: PostgresCluster) -> None:
    started = time.perf_counter()
    pg_cluster.heal()
    assert time.perf_counter() - started < 0.05


def test_heal_after_every_kind_of_fault(pg_cluster: PostgresCluster) -> None:
    pg = pg_cluster
    pg.nodes[1].hang()
    pg.nodes[2].kill()
    pg.nodes[0].proxy.set_mode("refuse")
    pg.nodes[1].proxy.set_delay(1)
    pg.heal()
    assert all(n.running and not n.hung for n in pg.nodes)
    assert all(n.proxy.mode == "pass" and n.proxy.delay == 0 for n in pg.nodes)
    for node in pg.nodes:
        assert whoami(pg, node) == node.name


def test_recreate_keeps_ports_and_starts_from_scratch(
    make_pg_cluster: Callable[..., PostgresCluster],
) -> None:
    pg = make_pg_cluster(replicas=1)
    ports = [(n.port, n.proxy_port) for n in pg.nodes]
    table = new_table(pg)
    pg.nodes[1].hang()
    pg.recreate()
    assert [(n.port, n.proxy_port) for n in pg.nodes] == ports
    assert pg.execute(pg.primary, "SELECT to_regclass(%s) IS NULL", [table]) == [(True,)]
    assert [whoami(pg, n) for n in pg.nodes] == ["pg0", "pg1"]


def test_factory_makes_other_shapes(make_pg_cluster: Callable[..., PostgresCluster]) -> None:
    pg = make_pg_cluster(replicas=1)
    assert [n.name for n in pg.nodes] == ["pg0", "pg1"]
    table = new_table(pg)
    pg.execute(pg.primary, f"INSERT INTO {table} VALUES (1, 'one')")
    pg.wait_caught_up()
    assert rows(pg, pg.nodes[1], table) == [(1, "one")]


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
