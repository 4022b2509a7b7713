"""The per-connection pool hooks (psycopg_pool's check= and reset= run them) over sqlite3
connections made by clusterdb (no server): a connection is counted in its pool's balance once
and out once, refused at checkout and dropped at return when its node is drained; and
clusterdb.psycopg.pool_kwargs refuses what cannot work."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import clusterdb
import clusterdb.psycopg
from clusterdb.runtime import pool_hooks
from clusterdb.runtime.pool_balance import PoolBalance


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[str]:
    nodes = [{"name": n, "dsn": str(tmp_path / f"{n}.db")} for n in ("a", "b")]
    clusterdb.register("hooks-lite", driver=sqlite3, nodes=nodes, monitor=False)
    yield "hooks-lite"
    clusterdb.unregister("hooks-lite")


def _pooled(cluster: str) -> tuple[PoolBalance, Any, str]:
    """A balance, and a connection counted in it: its node."""
    balance = PoolBalance("any")
    conn = clusterdb.connect(cluster)
    ref = clusterdb.node_of(conn)
    assert ref is not None
    pool_hooks.counted(conn, balance)
    return balance, conn, ref.node


def test_counted_once_in_and_once_out(lite: str) -> None:
    balance, conn, node = _pooled(lite)
    assert balance.counts == {node: 1} and balance.opened_total == 1
    pool_hooks.uncounted(conn)
    pool_hooks.uncounted(conn)  # closed, then collected: counted out once
    assert balance.counts == {}
    pool_hooks.counted(clusterdb.connect(lite), None)  # no pool: nothing to count
    assert balance.opened_total == 1
    conn.close()


def test_a_drained_node_is_refused_at_checkout_and_dropped_at_return(lite: str) -> None:
    balance, conn, node = _pooled(lite)
    assert pool_hooks.keeps(conn) and not pool_hooks.leaves(conn)
    clusterdb.drain(lite, node)
    assert not pool_hooks.keeps(conn) and balance.refused == 1
    assert pool_hooks.leaves(conn) and balance.moved == 0  # dropped, not a move
    clusterdb.undrain(lite, node)
    plain = clusterdb.connect(lite)  # of no pool: fits() decides, nothing leaves
    assert pool_hooks.keeps(plain) and not pool_hooks.leaves(plain)
    conn.close()
    plain.close()


def test_expired_marks_what_the_pool_keeps_a_lifetime_on(lite: str) -> None:
    conn = clusterdb.connect(lite)
    assert not pool_hooks.expired(conn)  # no pool's _expire_at: the caller closes it
    conn._expire_at = 1e9
    assert pool_hooks.expired(conn) and conn._expire_at < 0
    conn.close()


@pytest.mark.parametrize(
    ("role", "error", "message"),
    [
        ("leader", clusterdb.ConfigError, "role must be one of"),
        ("any", clusterdb.InterfaceError, "uses the sqlite3 driver, not psycopg"),
    ],
)
def test_pool_kwargs_refuses_a_bad_role_or_a_cluster_of_another_driver(
    lite: str, role: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):  # at the call, not inside the pool's workers
        clusterdb.psycopg.pool_kwargs(lite, role=role)  # type: ignore[arg-type]
