"""A canary password never appears in an error message, repr, log line or stats value.

The canary is a real password (a role created for the test), registered inline and inside a
DSN node, then put through every failure: a refused port, a wrong password passed as an
override (itself a second canary), a hung node, every node down, a sub-second deadline and a
bad node spec. Everything clusterdb produced is then searched for either canary.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from connect_support import settled, whoami

import clusterdb
from clusterdb.runtime import process
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.ports import free_port
from clusterdb.testing.postgres import PostgresCluster

CANARY = "canary-Pw-7f3a9"
WRONG = "canary-Override-b41c"
USER = "cdb_canary"


class Texts:
    """Every string an object can show: str, repr, and for errors their causes and tracebacks."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, what: str, obj: object) -> None:
        self.items.append((f"str({what})", str(obj)))
        self.items.append((f"repr({what})", repr(obj)))

    def add_error(self, what: str, exc: BaseException) -> None:
        self.add(what, exc)
        self.items.append((f"traceback({what})", "".join(traceback.format_exception(exc))))
        for node, error in getattr(exc, "errors", {}).items():
            self.add_error(f"{what}.errors[{node}]", error)
        for link in ("__cause__", "__context__"):
            chained = getattr(exc, link)
            if chained is not None and chained is not exc:
                self.add(f"{what}.{link}", chained)

    def add_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        formatter = logging.Formatter("%(levelname)s %(name)s %(message)s")
        records = [r for r in caplog.records if r.name.startswith("clusterdb")]
        assert records, "nothing was logged at DEBUG: the check would be empty"
        for record in records:
            self.items.append(("log", formatter.format(record)))
            self.items.append(("log args", repr(record.args)))

    def add_cluster(self, name: str) -> None:
        cluster = process.get(name)
        self.add("cluster", cluster)
        self.add("registry", process.all_clusters())
        self.add("config", cluster.config)
        for node in cluster.config.nodes:
            self.add(f"node {node.name}", node)
        snap = settled(name)
        self.add("stats", snap)
        self.items.append(("stats.as_dict()", str(snap.as_dict())))
        self.add("all stats", clusterdb.stats.snapshot())

    def leaks(self, *secrets: str) -> list[str]:
        return [f"{where}: {text}" for where, text in self.items for s in secrets if s in text]


def fail(texts: Texts, what: str, name: str, **overrides: Any) -> clusterdb.AllNodesFailed:
    with pytest.raises(clusterdb.AllNodesFailed) as info:
        clusterdb.connect(name, **overrides)
    texts.add_error(what, info.value)
    return info.value


@pytest.fixture
def name() -> Iterator[str]:
    name = f"canary-{uuid.uuid4().hex[:8]}"
    yield name
    if name in clusterdb.clusters():
        clusterdb.unregister(name)


@contextmanager
def canary_role(harness: Cluster, create: str, drop: str) -> Iterator[None]:
    harness.execute(harness.primary, drop)
    harness.execute(harness.primary, create)
    harness.wait_caught_up()
    try:
        yield
    finally:
        harness.execute(harness.primary, drop)


@pytest.fixture
def pg_canary(pg_cluster: PostgresCluster) -> Iterator[PostgresCluster]:
    create = f"CREATE ROLE {USER} LOGIN PASSWORD '{CANARY}'"
    with canary_role(pg_cluster, create, f"DROP ROLE IF EXISTS {USER}"):
        yield pg_cluster


@pytest.fixture
def mariadb_canary(mariadb_cluster: MariaDBCluster) -> Iterator[MariaDBCluster]:
    create = f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{CANARY}'"
    with canary_role(mariadb_cluster, create, f"DROP USER IF EXISTS '{USER}'@'%'"):
        yield mariadb_cluster


@pytest.mark.postgres
def test_canary_never_leaks_postgres(
    pg_canary: PostgresCluster, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg = pg_canary
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    texts = Texts()
    first = pg.nodes[0]
    nodes = [
        *pg.node_specs(),
        {"name": "wrong-port", "host": "127.0.0.1", "port": free_port()},
        f"host=127.0.0.1 port={first.proxy_port} user={USER} password={CANARY}",
    ]
    clusterdb.register(
        name,
        driver="psycopg",
        nodes=nodes,
        user=USER,
        password=CANARY,
        dbname=pg.dbname,
        connect_timeout=1.0,
        monitor=False,
    )
    with clusterdb.connect(name) as conn:  # the canary is the real password
        assert whoami(pg, conn) in {n.name for n in pg.nodes}

    # A generous deadline: the point is the server's refusal, not a timeout on a busy machine.
    error = fail(texts, "wrong password", name, password=WRONG, connect_timeout=10)
    assert "password authentication failed" in str(error), str(error)

    pg.nodes[1].hang()
    clusterdb.connect(name).close()
    pg.nodes[1].resume()

    for node in pg.nodes:
        node.proxy.set_mode("deaf")
    fail(texts, "deaf", name, connect_timeout=0.3)
    for node in pg.nodes:
        node.proxy.set_mode("refuse")
    fail(texts, "all down", name)
    for node in pg.nodes:
        node.proxy.set_mode("pass")

    with pytest.raises(clusterdb.ConfigError) as bad:
        clusterdb.register(
            f"{name}-bad", driver="psycopg", nodes=[f"host=h password={CANARY} bogus=1"]
        )
    texts.add_error("bad node", bad.value)

    texts.add_cluster(name)
    texts.add_logs(caplog)
    assert texts.leaks(CANARY, WRONG) == []


@pytest.mark.mariadb
def test_canary_never_leaks_mariadb(
    mariadb_canary: MariaDBCluster, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    mdb = mariadb_canary
    caplog.set_level(logging.DEBUG, logger="clusterdb")
    texts = Texts()
    nodes = [
        *mdb.node_specs(),
        f"mysql://{USER}:{CANARY}@127.0.0.1:{mdb.nodes[0].proxy_port}/{mdb.dbname}",
    ]
    clusterdb.register(
        name,
        driver="pymysql",
        nodes=nodes,
        user=USER,
        password=CANARY,
        connect_timeout=1.0,
        monitor=False,
    )
    clusterdb.connect(name).close()

    # A generous deadline: the point is the server's refusal, not a timeout on a busy machine.
    error = fail(texts, "wrong password", name, password=WRONG, connect_timeout=10)
    assert "Access denied" in str(error), str(error)

    for node in mdb.nodes:
        node.proxy.set_mode("deaf")
    fail(texts, "deaf", name, connect_timeout=0.3)
    for node in mdb.nodes:
        node.proxy.set_mode("refuse")
    fail(texts, "all down", name)
    for node in mdb.nodes:
        node.proxy.set_mode("pass")

    texts.add_cluster(name)
    texts.add_logs(caplog)
    assert texts.leaks(CANARY, WRONG) == []
