"""The MariaDB harness does what it says, against real servers."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from clusterdb.testing import MariaDBCluster, TestNode

pytestmark = pytest.mark.mariadb


def new_table(m: MariaDBCluster) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    m.execute(m.primary, f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(50))")
    return name


def rows(m: MariaDBCluster, node: TestNode, table: str) -> list[tuple[Any, ...]]:
    return m.execute(node, f"SELECT id, v FROM {table} ORDER BY id", admin=False)


def whoami(m: MariaDBCluster, node: TestNode, via_proxy: bool = True) -> str:
    conn = pymysql.connect(
        **m.connect_kwargs(node, via_proxy=via_proxy), connect_timeout=5, read_timeout=5
    )
    try:
        cur = conn.cursor()
        cur.execute(m.WHOAMI_SQL)
        return str(cur.fetchone()[0])
    finally:
        conn.close()


def refuses(node: TestNode) -> bool:
    try:
        socket.create_connection((node.host, node.port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_shape_identity_and_privileges(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    assert [n.name for n in m.nodes] == ["mdb0", "mdb1"]
    assert m.driver == "pymysql"
    assert m.node_specs(via_proxy=False)[1] == {
        "name": "mdb1",
        "host": "127.0.0.1",
        "port": m.nodes[1].port,
    }
    for node in m.nodes:
        assert whoami(m, node) == node.name
    assert m.execute(m.nodes[1], "SELECT @@read_only") == [(1,)]
    assert m.execute(m.nodes[0], "SELECT @@read_only") == [(0,)]
    grants = " ".join(r[0] for r in m.execute(m.primary, "SHOW GRANTS", admin=False))
    assert "READ ONLY ADMIN" not in grants and "SLAVE MONITOR" in grants
    # The application user can read the replication status (the driver reads lag that way).
    status = m.execute(m.nodes[1], "SHOW SLAVE STATUS", admin=False)
    assert len(status) == 1
    assert m.password not in repr(m) and m.admin_password not in repr(m)


def test_row_reaches_replica_and_replica_refuses_app_writes(
    mariadb_cluster: MariaDBCluster,
) -> None:
    m = mariadb_cluster
    table = new_table(m)
    m.execute(m.primary, f"INSERT INTO {table} VALUES (1, 'hello')", admin=False)
    m.wait_caught_up()
    assert rows(m, m.nodes[1], table) == [(1, "hello")]
    with pytest.raises(pymysql.err.OperationalError) as info:
        m.execute(m.nodes[1], f"INSERT INTO {table} VALUES (2, 'no')", admin=False)
    assert info.value.args[0] == 1290  # --read-only


def test_kill_makes_the_port_refuse(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    node = m.nodes[1]
    node.kill()
    assert not node.running and refuses(node)
    node.start()
    assert whoami(m, node) == node.name
    table = new_table(m)
    m.execute(m.primary, f"INSERT INTO {table} VALUES (1, 'after')")
    m.wait_caught_up()
    assert rows(m, node, table) == [(1, "after")]


def test_hang_accepts_tcp_but_driver_times_out(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    node = m.nodes[1]
    node.hang()
    try:
        socket.create_connection((node.host, node.port), timeout=2).close()
        started = time.monotonic()
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(
                **m.connect_kwargs(node, via_proxy=False), connect_timeout=1, read_timeout=1
            )
        assert 0.5 < time.monotonic() - started < 10
    finally:
        node.resume()
    assert whoami(m, node) == node.name


def test_promote_replica_takes_writes(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    old, new = m.nodes
    table = new_table(m)
    m.execute(old, f"INSERT INTO {table} VALUES (1, 'before')")
    m.wait_caught_up()
    old.kill()
    m.promote(new)
    assert m.primary is new and old.role == "replica"
    assert m.execute(new, "SELECT @@read_only") == [(0,)]
    m.execute(new, f"INSERT INTO {table} VALUES (2, 'after')", admin=False)
    assert rows(m, new, table) == [(1, "before"), (2, "after")]
    m.heal()
    assert m.primary is old and m.nodes[1].role == "replica"
    m.execute(old, f"INSERT INTO {table} VALUES (3, 'healed')", admin=False)
    m.wait_caught_up()
    for node in m.nodes:
        assert rows(m, node, table) == [(1, "before"), (2, "after"), (3, "healed")]


def test_promote_in_1_plus_2_other_replica_follows(
    make_mariadb_cluster: Callable[..., MariaDBCluster],
) -> None:
    m = make_mariadb_cluster(replicas=2)
    old, new, other = m.nodes
    table = new_table(m)
    m.wait_caught_up()
    m.promote(new)  # old primary still running: fenced
    assert not old.running
    m.execute(new, f"INSERT INTO {table} VALUES (1, 'x')", admin=False)
    m.wait_caught_up()
    assert rows(m, other, table) == [(1, "x")]
    old.start()  # comes back as a replica of the new primary
    m.wait_caught_up()
    assert rows(m, old, table) == [(1, "x")]
    assert m.execute(old, "SELECT @@read_only") == [(1,)]


def test_delayed_replica_lags_then_catches_up(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    replica = m.nodes[1]
    table = new_table(m)
    m.wait_caught_up()
    m.set_replication_delay(replica, 5)
    m.execute(m.primary, f"INSERT INTO {table} VALUES (1, 'late')")
    written = time.monotonic()
    time.sleep(1.0)
    assert rows(m, replica, table) == []
    m.set_replication_delay(replica, 0)
    m.wait_caught_up(timeout=3)
    assert time.monotonic() - written < 4.5  # well before the 5 s delay would have run out
    assert rows(m, replica, table) == [(1, "late")]


def test_proxy_refuse_and_heal(mariadb_cluster: MariaDBCluster) -> None:
    m = mariadb_cluster
    node = m.nodes[0]
    node.proxy.set_mode("refuse")
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**m.connect_kwargs(node), connect_timeout=1, read_timeout=1)
    m.heal()
    assert whoami(m, node) == node.name
