"""The ``clusterdb`` logger during failures: state changes at INFO/WARNING, no secret ever."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import clusterdb

pytestmark = pytest.mark.postgres

CANARY = "Canary-log-7c1b2a-secret"


@pytest.fixture
def cluster_name() -> Iterator[str]:
    name = f"log-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        if name in clusterdb.clusters():
            clusterdb.unregister(name)


def register(name: str, pg: Any, password: str | None = None, timeout: float = 2.0) -> None:
    settings = pg.register_kwargs()
    if password is not None:
        settings["password"] = password
    clusterdb.register(name, **settings, connect_timeout=timeout)


def records_about(
    caplog: pytest.LogCaptureFixture, node: str, level: int
) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("clusterdb") and r.levelno >= level and node in r.getMessage()
    ]


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def all_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        if r.exc_info and r.exc_info[1] is not None:
            parts.append(repr(r.exc_info[1]))
            parts.append(str(r.exc_info[1]))
        parts.append(repr(r.args))
    return "\n".join(parts)


def test_kill_and_restart_logged(
    caplog: pytest.LogCaptureFixture, pg_cluster: Any, cluster_name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    victim = pg_cluster.replicas[-1]
    victim.kill()
    register(cluster_name, pg_cluster)
    # The first connect races every node, so the dead one is tried and found down.
    clusterdb.connect(cluster_name).close()
    assert wait_for(lambda: bool(records_about(caplog, victim.name, logging.WARNING)))
    assert clusterdb.stats.snapshot(cluster_name).node(victim.name).state == "down"
    # Attempts themselves are logged at DEBUG.
    assert any(r.levelno == logging.DEBUG for r in caplog.records if r.name.startswith("cluster"))

    caplog.clear()
    victim.start()
    # The monitor probes the down node and logs it coming back.
    assert wait_for(lambda: clusterdb.stats.snapshot(cluster_name).node(victim.name).state == "up")
    ups = records_about(caplog, victim.name, logging.INFO)
    assert ups, [r.getMessage() for r in caplog.records]
    assert all(r.levelno <= logging.WARNING for r in ups)
    assert pg_cluster.password not in all_text(caplog)


def test_hung_node_logged(
    caplog: pytest.LogCaptureFixture, pg_cluster: Any, cluster_name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    victim = pg_cluster.replicas[0]
    victim.hang()
    register(cluster_name, pg_cluster, timeout=1.0)
    clusterdb.connect(cluster_name).close()
    # The hung node's attempt ends at the deadline and is recorded as a failure.
    assert wait_for(lambda: bool(records_about(caplog, victim.name, logging.WARNING)))
    assert clusterdb.stats.snapshot(cluster_name).node(victim.name).state == "down"
    assert pg_cluster.password not in all_text(caplog)


def test_drain_logged(caplog: pytest.LogCaptureFixture, pg_cluster: Any, cluster_name: str) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    register(cluster_name, pg_cluster)
    node = pg_cluster.replicas[0].name
    clusterdb.drain(cluster_name, node)
    assert [r.levelno for r in records_about(caplog, node, logging.INFO)] == [logging.INFO]
    assert "drained" in records_about(caplog, node, logging.INFO)[0].getMessage()
    caplog.clear()
    clusterdb.undrain(cluster_name, node)
    assert records_about(caplog, node, logging.INFO)


def test_promotion_logged(
    caplog: pytest.LogCaptureFixture, pg_cluster: Any, cluster_name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    register(cluster_name, pg_cluster, timeout=1.0)
    clusterdb.connect(cluster_name).close()  # races every node: roles learned
    old, new = pg_cluster.primary, pg_cluster.replicas[0]
    # Clear before the change: the monitor may notice the promotion while promote() runs.
    caplog.clear()
    old.kill()
    pg_cluster.promote(new)

    def promoted_and_logged() -> bool:
        # Connects (and the monitor) learn the new role; the role change is an event.
        with contextlib.suppress(clusterdb.Error):
            clusterdb.connect(cluster_name, role="primary").close()
        return any(
            "primary" in r.getMessage() for r in records_about(caplog, new.name, logging.INFO)
        )

    assert wait_for(promoted_and_logged, timeout=20.0), [r.getMessage() for r in caplog.records]
    assert clusterdb.stats.snapshot(cluster_name).node(new.name).role == "primary"


def test_wrong_password_logged_without_the_secret(
    caplog: pytest.LogCaptureFixture, pg_cluster: Any, cluster_name: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    register(cluster_name, pg_cluster, password=CANARY)
    with pytest.raises(clusterdb.AllNodesFailed) as info:
        clusterdb.connect(cluster_name)
    for node in pg_cluster.nodes:
        assert records_about(caplog, node.name, logging.WARNING), node.name
    text = all_text(caplog)
    assert "password authentication failed" in text or "authentication" in text
    assert CANARY not in text
    assert CANARY not in str(info.value)
    snap = clusterdb.stats.snapshot(cluster_name)
    assert CANARY not in repr(snap)
    assert CANARY not in str(snap.as_dict())
