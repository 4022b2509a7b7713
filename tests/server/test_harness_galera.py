"""The Galera harness does what it says, against real servers (MariaDB with galera-4)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pymysql
import pytest

from clusterdb.testing import GaleraCluster, HarnessError, TestNode
from clusterdb.testing.galera_server import SUSPECT_TIMEOUT

pytestmark = pytest.mark.galera

# ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use".
_NOT_READY = 1047


def new_table(g: GaleraCluster) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    g.execute(g.nodes[0], f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(50))")
    return name


def causal_rows(g: GaleraCluster, node: TestNode, table: str) -> list[tuple[Any, ...]]:
    """The rows as ``node`` sees them after applying every write committed anywhere before."""
    conn = pymysql.connect(**g.connect_kwargs(node), connect_timeout=5, read_timeout=30)
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION wsrep_sync_wait = 1")
        cur.execute(f"SELECT id, v FROM {table} ORDER BY id")
        return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()


def state(g: GaleraCluster, node: TestNode) -> tuple[str, str, str, str]:
    s = g.status(node)
    return (
        s["wsrep_local_state_comment"],
        s["wsrep_ready"],
        s["wsrep_cluster_status"],
        s["wsrep_cluster_size"],
    )


SYNCED_3 = ("Synced", "ON", "Primary", "3")


def test_shape_identity_and_every_node_takes_writes(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    assert [n.name for n in g.nodes] == ["gal0", "gal1", "gal2"]
    assert all(n.role == "primary" for n in g.nodes) and g.replicas == []
    table = new_table(g)
    for node in g.nodes:
        assert g.execute(node, g.WHOAMI_SQL, admin=False) == [(node.name,)]
        assert state(g, node) == SYNCED_3
        g.execute(node, f"INSERT INTO {table} VALUES ({node.index}, %s)", [node.name], admin=False)
    for node in g.nodes:
        assert causal_rows(g, node, table) == [(0, "gal0"), (1, "gal1"), (2, "gal2")]
    # The application user reads the wsrep status (as clusterdb's probe does).
    status = g.execute(g.nodes[1], "SHOW GLOBAL STATUS LIKE 'wsrep_ready'", admin=False)
    assert status == [("wsrep_ready", "ON")]
    assert g.password not in repr(g) and g.admin_password not in repr(g)


def test_isolated_node_leaves_the_primary_component_and_rejoins(
    galera_cluster: GaleraCluster,
) -> None:
    g = galera_cluster
    table = new_table(g)
    lone = g.nodes[2]
    started = time.monotonic()
    g.isolate(lone)
    assert time.monotonic() - started < 10 * SUSPECT_TIMEOUT
    assert state(g, lone)[1:3] == ("OFF", "non-Primary")
    for node in g.nodes[:2]:
        assert state(g, node) == ("Synced", "ON", "Primary", "2")
    # The isolated node still answers, but refuses application statements.
    assert g.execute(lone, "SELECT 1", admin=False) == [(1,)]
    with pytest.raises(pymysql.err.OperationalError) as info:
        g.execute(lone, f"SELECT * FROM {table}", admin=False)
    assert info.value.args[0] == _NOT_READY
    g.execute(g.nodes[0], f"INSERT INTO {table} VALUES (1, 'while isolated')", admin=False)
    g.rejoin(lone)
    assert state(g, lone) == SYNCED_3
    assert causal_rows(g, lone, table) == [(1, "while isolated")]


def test_desync_and_resync(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    node = g.nodes[1]
    g.desync(node)
    assert state(g, node) == ("Donor/Desynced", "ON", "Primary", "3")
    assert g.status(node)["wsrep_local_state"] == "2"
    g.resync(node)
    assert state(g, node) == SYNCED_3


def test_state_transfer_holds_the_chosen_donor(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    table = new_table(g)
    g.execute(g.nodes[0], f"INSERT INTO {table} VALUES (1, 'before')", admin=False)
    joiner, chosen = g.nodes[2], g.nodes[1]
    donor = g.state_transfer(joiner, donor=chosen, hold=2.0, wait=False)
    began = time.monotonic()
    assert donor is chosen
    assert state(g, donor)[0] == "Donor/Desynced"
    assert g.status(g.nodes[0])["wsrep_local_state_comment"] == "Synced"
    time.sleep(1.0)
    assert state(g, donor)[0] == "Donor/Desynced"  # still held
    g.wait_synced()
    assert time.monotonic() - began >= 1.5
    assert state(g, donor) == SYNCED_3
    assert state(g, joiner) == SYNCED_3
    assert causal_rows(g, joiner, table) == [(1, "before")]
    # Its Galera state was rebuilt by the transfer, not kept.
    assert (joiner.dir / "grastate.dat").exists()


def test_state_transfer_waits_by_default(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    table = new_table(g)
    g.execute(g.nodes[1], f"INSERT INTO {table} VALUES (1, 'x')", admin=False)
    donor = g.state_transfer(g.nodes[0])
    assert donor in g.nodes[1:]
    assert state(g, g.nodes[0]) == SYNCED_3
    assert causal_rows(g, g.nodes[0], table) == [(1, "x")]


def test_killed_node_rejoins_and_all_killed_heal(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    table = new_table(g)
    first = g.nodes[0]  # the node that bootstrapped the cluster
    first.kill()
    assert not first.running
    g.execute(g.nodes[1], f"INSERT INTO {table} VALUES (1, 'while down')", admin=False)
    first.start()  # joins the running cluster (no second bootstrap)
    assert state(g, first) == SYNCED_3
    assert causal_rows(g, first, table) == [(1, "while down")]
    for node in g.nodes:
        node.kill()
    g.heal()
    for node in g.nodes:
        assert state(g, node) == SYNCED_3
    assert causal_rows(g, g.nodes[2], table) == [(1, "while down")]


def test_hung_node_is_evicted_then_heal_brings_it_back(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    hung = g.nodes[1]
    hung.hang()

    def evicted() -> bool:
        return all(state(g, n)[2:] == ("Primary", "2") for n in (g.nodes[0], g.nodes[2]))

    deadline = time.monotonic() + 10 * SUSPECT_TIMEOUT
    while not evicted():
        assert time.monotonic() < deadline, "the others never evicted the hung node"
        time.sleep(0.1)
    g.heal()
    assert not hung.hung
    for node in g.nodes:
        assert state(g, node) == SYNCED_3


def test_promote_and_replication_delay_are_refused(galera_cluster: GaleraCluster) -> None:
    g = galera_cluster
    with pytest.raises(HarnessError):
        g.promote(g.nodes[1])
    with pytest.raises(HarnessError):
        g.set_replication_delay(g.nodes[1], 1.0)
    with pytest.raises(ValueError):
        g.state_transfer(g.nodes[1], hold=60.0)
    with pytest.raises(HarnessError):
        g.state_transfer(g.nodes[1], donor=g.nodes[1])


def test_single_node_cluster_starts_and_stops_clean() -> None:
    g = GaleraCluster(nodes=1)
    with g:
        assert g.base_dir is not None
        base: Path = g.base_dir
        (node,) = g.nodes
        assert state(g, node) == ("Synced", "ON", "Primary", "1")
        proc = node.proc
    assert proc is not None and not proc.alive
    assert not base.exists()
