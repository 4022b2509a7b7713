"""PyMySQL's SET NAMES sent in the same write as the handshake response (one round trip fewer),
on a real MariaDB: only once the server, port and user are known to authenticate in one step;
the connection is the one PyMySQL makes; a wrong password gets the server's error; an account
that changed plugin is connected again the usual way."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from connect_support import registered, whoami

import clusterdb
from clusterdb.drivers import pymysql_handshake
from clusterdb.drivers.base import DriverAdapter
from clusterdb.drivers.pymysql_gtid import TrackingConnection
from clusterdb.runtime import process
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.proxy import Proxy

pytestmark = pytest.mark.mariadb

# Per chunk and direction, through a proxy of the test's own: large enough that the client's
# own CPU time (tens of ms on a loaded 2-core machine) cannot blur 3 delays into 5.
DELAY = 0.15

SESSION_SQL = (
    "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, "
    "@@collation_connection, @@autocommit, _utf8mb4'naïve €' AS text"
)


@contextlib.contextmanager
def adapter_and_target(
    harness: MariaDBCluster, port: int, **options: Any
) -> Iterator[tuple[DriverAdapter, Any]]:
    """The PyMySQL adapter, and the first node's connect arguments with ``port`` instead
    (``options``: for register())."""
    with registered(harness, **options) as name:
        cluster = process.get(name)
        target = cluster.target(harness.nodes[0].name)
        yield cluster.adapter, dataclasses.replace(target, kwargs={**target.kwargs, "port": port})


def timed_start(adapter: DriverAdapter, target: Any, **overrides: Any) -> tuple[float, Any]:
    began = time.monotonic()
    conn = adapter.start(target, overrides, 5.0, 2.0)
    return time.monotonic() - began, conn


@pytest.mark.parametrize(
    ("autocommit", "usual"),
    # False (PyMySQL's default) differs from the server's: PyMySQL sends SET AUTOCOMMIT too.
    [(True, 5), (False, 7)],
    ids=["autocommit-as-the-server", "autocommit-off"],
)
def test_set_names_goes_along_once_the_server_is_known(
    mariadb_cluster: MariaDBCluster, autocommit: bool, usual: int
) -> None:
    """Through a proxy adding DELAY per chunk and direction: the first handshake waits for the
    greeting, the authentication's OK, SET NAMES' OK and, when the server's autocommit is not
    the one asked for, SET AUTOCOMMIT's OK (five or seven delays at least); once known, those
    statements go with the handshake response, and the connect takes three."""
    node = mariadb_cluster.nodes[0]
    with Proxy(node.host, node.port) as proxy:
        proxy.set_delay(DELAY)
        with adapter_and_target(mariadb_cluster, proxy.port) as (adapter, target):
            first, conn = timed_start(adapter, target, autocommit=autocommit)
            conn.close()
            assert first >= usual * DELAY
            second, conn = timed_start(adapter, target, autocommit=autocommit)
            try:
                # Three delays when sent along; five or more when not: the bound sits between.
                assert second < 4.5 * DELAY, f"{second:.3f} s: nothing was sent along"
                assert whoami(mariadb_cluster, conn) == node.name
                assert conn.get_autocommit() is autocommit
                cur = conn.cursor()
                cur.execute("SELECT @@autocommit")
                assert cur.fetchone() == (int(autocommit),)
            finally:
                conn.close()


def test_pipeline_handshake_false_keeps_the_usual_handshake(
    mariadb_cluster: MariaDBCluster,
) -> None:
    node = mariadb_cluster.nodes[0]
    with Proxy(node.host, node.port) as proxy:
        proxy.set_delay(DELAY)
        with adapter_and_target(mariadb_cluster, proxy.port, pipeline_handshake=False) as (
            adapter,
            target,
        ):
            for _ in range(2):
                took, conn = timed_start(adapter, target)
                conn.close()
                assert took >= 5 * DELAY
            assert pymysql_handshake.known(target.kwargs["host"], proxy.port, target.kwargs["user"])


@pytest.mark.parametrize(
    "settings",
    [{}, {"charset": "utf8mb4", "collation": "utf8mb4_unicode_ci"}, {"charset": "latin1"}],
    ids=["defaults", "collation", "latin1"],
)
def test_the_connection_is_the_one_pymysql_makes(
    mariadb_cluster: MariaDBCluster, settings: dict[str, Any]
) -> None:
    node = mariadb_cluster.nodes[0]
    with adapter_and_target(mariadb_cluster, node.proxy_port) as (adapter, target):
        kwargs = {**target.kwargs, **settings}  # the same settings on both sides
        adapter.start(target, settings, 5.0, 2.0).close()  # now known
        assert pymysql_handshake.known(
            target.kwargs["host"], node.proxy_port, target.kwargs["user"]
        )
        ours = adapter.start(target, settings, 5.0, 2.0)
        theirs = pymysql.connect(**kwargs)
        try:
            assert sorted(vars(ours)) == sorted(vars(theirs))  # no hook left behind
            for attr in ("charset", "encoding", "collation", "server_status", "autocommit_mode"):
                assert getattr(ours, attr) == getattr(theirs, attr), attr
            rows = []
            for conn in (ours, theirs):
                cur = conn.cursor()
                cur.execute(SESSION_SQL)
                rows.append(cur.fetchone())
            assert rows[0] == rows[1]
            if settings.get("collation"):
                assert rows[0][3] == settings["collation"]
        finally:
            ours.close()
            theirs.close()


def test_a_wrong_password_gets_the_servers_own_error(mariadb_cluster: MariaDBCluster) -> None:
    node = mariadb_cluster.nodes[0]
    with adapter_and_target(mariadb_cluster, node.proxy_port) as (adapter, target):
        adapter.start(target, {}, 5.0, 2.0).close()
        assert pymysql_handshake.known(
            target.kwargs["host"], node.proxy_port, target.kwargs["user"]
        )
        with pytest.raises(pymysql.err.OperationalError) as info:
            adapter.start(target, {"password": "not-the-password"}, 5.0, 2.0)
        assert info.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR, as PyMySQL alone gets
        assert "not-the-password" not in str(info.value)
        adapter.start(target, {}, 5.0, 2.0).close()


@pytest.fixture
def plugin_user(mariadb_cluster: MariaDBCluster) -> Iterator[tuple[str, str, Any]]:
    """A user of the primary alone (not replicated), authenticated by mysql_native_password,
    its password, and the primary's admin cursor (not replicated either); dropped after."""
    node = mariadb_cluster.nodes[0]
    user, password = f"cdb_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    admin = pymysql.connect(**mariadb_cluster.connect_kwargs(node, via_proxy=False, admin=True))
    cur = admin.cursor()
    cur.execute("SET SESSION sql_log_bin = 0")  # the replica knows no ed25519
    cur.execute("SELECT COUNT(*) FROM information_schema.plugins WHERE plugin_name = 'ed25519'")
    row = cur.fetchone()
    if not row or not row[0]:
        cur.execute("INSTALL SONAME 'auth_ed25519'")
    cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
    try:
        yield user, password, cur
    finally:
        cur.execute(f"DROP USER '{user}'@'%'")
        admin.close()


def test_an_account_that_changed_plugin_is_connected_again_the_usual_way(
    mariadb_cluster: MariaDBCluster, plugin_user: tuple[str, str, Any]
) -> None:
    """Known to authenticate in one step, then switched to ed25519: the server asks for an
    answer in that plugin, PyMySQL starts to give it, and the connect starts again without
    SET NAMES sent along; the account is forgotten, and later connects go the usual way."""
    user, password, admin = plugin_user
    node = mariadb_cluster.nodes[0]
    with adapter_and_target(mariadb_cluster, node.port) as (adapter, target):
        login = {"user": user, "password": password, "database": None}
        adapter.start(target, login, 5.0, 2.0).close()
        assert pymysql_handshake.known(target.kwargs["host"], node.port, user)
        admin.execute(
            f"ALTER USER '{user}'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('{password}')"
        )
        for _ in range(2):
            conn = adapter.start(target, login, 5.0, 2.0)
            try:
                cur = conn.cursor()
                cur.execute("SELECT CURRENT_USER(), @@character_set_client")
                assert cur.fetchone() == (f"{user}@%", "utf8mb4")
            finally:
                conn.close()
            assert not pymysql_handshake.known(target.kwargs["host"], node.port, user)


@pytest.mark.parametrize(
    "autocommit",
    # True, the server's own: PyMySQL then asks for nothing more; False: for SET AUTOCOMMIT.
    [True, False],
    ids=["asks-for-nothing", "asks-for-another-statement"],
)
def test_a_pymysql_that_asks_for_no_set_names_gets_a_clean_connection(
    mariadb_cluster: MariaDBCluster, monkeypatch: pytest.MonkeyPatch, autocommit: bool
) -> None:
    """Should a PyMySQL version stop asking for SET NAMES, the answer to the statement sent
    along must not become the answer to the caller's first query: that connection is closed,
    the connect made again the usual way, and nothing is sent along from then on."""
    node = mariadb_cluster.nodes[0]
    with adapter_and_target(mariadb_cluster, node.proxy_port) as (adapter, target):
        adapter.start(target, {"autocommit": autocommit}, 5.0, 2.0).close()
        host, user = target.kwargs["host"], target.kwargs["user"]
        assert pymysql_handshake.known(host, node.proxy_port, user, autocommit)
        monkeypatch.setattr(pymysql_handshake, "_disabled", False)  # put back after the test
        monkeypatch.setattr(pymysql.connections.Connection, "set_character_set", lambda *a: None)
        monkeypatch.setattr(TrackingConnection, "set_character_set", lambda *a: None)
        for _ in range(2):
            conn = adapter.start(target, {"autocommit": autocommit}, 5.0, 2.0)
            try:
                cur = conn.cursor()
                cur.execute("SELECT 41 + 1, @@autocommit")
                assert cur.fetchone() == (42, int(autocommit))
            finally:
                conn.close()
        assert pymysql_handshake._disabled


def test_threads_connecting_at_once_each_get_a_whole_connection(
    mariadb_cluster: MariaDBCluster,
) -> None:
    """16 threads, 15 connects each, through clusterdb.connect(): every connection answers
    its own first query (no answer meant for another statement, no hook left behind), with the
    charset PyMySQL set, and the servers are known afterwards (later connects send along)."""
    threads, rounds = 16, 15
    with registered(mariadb_cluster) as name:
        cluster = process.get(name)

        def work(_: int) -> list[tuple[Any, ...]]:
            rows = []
            for i in range(rounds):
                conn = clusterdb.connect(name)
                try:
                    assert "write_packet" not in vars(conn)
                    cur = conn.cursor()
                    cur.execute("SELECT %s, @@character_set_client", (i,))
                    rows.append(cur.fetchone())
                finally:
                    conn.close()
            return rows

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(work, range(threads)))
        assert results == [[(i, "utf8mb4") for i in range(rounds)]] * threads
        for node in mariadb_cluster.nodes:
            kwargs = cluster.target(node.name).kwargs
            assert pymysql_handshake.known(kwargs["host"], kwargs["port"], kwargs["user"])


def test_a_server_whose_autocommit_default_changed_is_learned_again(
    mariadb_cluster: MariaDBCluster,
) -> None:
    """Known to want SET AUTOCOMMIT = 0 after SET NAMES (PyMySQL's default mode, the server's
    default on), then the server's default turns off: PyMySQL no longer asks for it, so that
    connection is made again the usual way (its answer would have gone to the caller's first
    query), and the server is learned afresh; nothing is turned off for other servers."""
    node = mariadb_cluster.nodes[0]
    with adapter_and_target(mariadb_cluster, node.proxy_port) as (adapter, target):
        host, user = target.kwargs["host"], target.kwargs["user"]
        adapter.start(target, {}, 5.0, 2.0).close()
        assert pymysql_handshake.known(host, node.proxy_port, user)
        mariadb_cluster.execute(node, "SET GLOBAL autocommit = 0")  # not replicated
        try:
            for _ in range(2):
                conn = adapter.start(target, {}, 5.0, 2.0)
                try:
                    cur = conn.cursor()
                    cur.execute("SELECT 6 * 7, @@autocommit")
                    assert cur.fetchone() == (42, 0)
                finally:
                    conn.close()
            assert pymysql_handshake.known(host, node.proxy_port, user)
            assert not pymysql_handshake._disabled
        finally:
            mariadb_cluster.execute(node, "SET GLOBAL autocommit = 1")
