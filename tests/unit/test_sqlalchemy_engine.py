"""clusterdb.sqlalchemy.create_engine over sqlite3 (no server): the pool's connections come
from clusterdb, a drained node's connections are refused at checkout and replaced, and a node
holding more than its share gives connections up at checkin, one at a time."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

import clusterdb
import clusterdb.sqlalchemy


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[str]:
    """Two sqlite files naming their node. sqlite connects in microseconds, where a worker
    thread's wake-up shows as a 10x slower node: one window, equal weights, so both nodes
    get an equal share of new connections whatever their estimates."""
    nodes = []
    for name in ("a", "b"):
        with sqlite3.connect(tmp_path / f"{name}.db") as conn:
            conn.execute("CREATE TABLE whoami (name TEXT)")
            conn.execute("INSERT INTO whoami VALUES (?)", (name,))
        nodes.append({"name": name, "dsn": str(tmp_path / f"{name}.db")})
    clusterdb.register(
        "engine-lite",
        driver=sqlite3,
        nodes=nodes,
        monitor=False,
        latency_window_ms=1000.0,
        latency_weight_exponent=0.0,
    )
    yield "engine-lite"
    clusterdb.unregister("engine-lite")


def _nodes_of(engine: sqlalchemy.Engine, count: int) -> list[str]:
    """Check ``count`` connections out at once: the node each one is on."""
    held = [engine.connect() for _ in range(count)]
    try:
        return [c.execute(sqlalchemy.text("SELECT name FROM whoami")).scalar_one() for c in held]
    finally:
        for conn in held:
            conn.close()


def test_a_drained_node_loses_its_connections_at_their_next_checkout(lite: str) -> None:
    engine = clusterdb.sqlalchemy.create_engine(lite, pool_size=6, max_overflow=0)
    try:
        assert len(_nodes_of(engine, 6)) == 6
        clusterdb.drain(lite, "a")
        assert _nodes_of(engine, 6) == ["b"] * 6  # one checkout cycle
        clusterdb.undrain(lite, "a")
    finally:
        engine.dispose()


def test_the_pool_follows_the_shares_at_checkin_one_connection_at_a_time(lite: str) -> None:
    engine = clusterdb.sqlalchemy.create_engine(lite, pool_size=6, max_overflow=0)
    try:
        for _ in range(50):  # both nodes measured, so both get a share
            clusterdb.connect(lite).close()
        clusterdb.drain(lite, "a")
        assert _nodes_of(engine, 6) == ["b"] * 6
        clusterdb.undrain(lite, "a")
        # Node a is back: connections move to it at checkin, spaced, until the pool is even.
        started = time.monotonic()
        seen: list[str] = []
        while time.monotonic() - started < 20:
            seen = _nodes_of(engine, 6)
            if seen.count("a") >= 2:
                break
        elapsed = time.monotonic() - started
        assert 2 <= seen.count("a") <= 4, seen
        assert elapsed > 0.2  # spaced: at least one spacing (0.25 s) between two moves
    finally:
        engine.dispose()


def test_create_engine_refuses_a_creator_and_a_bad_role(lite: str) -> None:
    with pytest.raises(clusterdb.ConfigError, match="creator"):
        clusterdb.sqlalchemy.create_engine(lite, creator=lambda: None)
    with pytest.raises(clusterdb.ConfigError, match="role"):
        clusterdb.sqlalchemy.create_engine(lite, role="leader")  # type: ignore[arg-type]
