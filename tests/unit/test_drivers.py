"""Driver adapters: how a node of the config becomes the driver's connect arguments, and how
an attempt begins at the TCP level (against local sockets, no database: connecting to a
database is tested on real servers).
"""

from __future__ import annotations

import socket
import sqlite3
import types
from typing import Any

import psycopg
import pymysql
import pytest
from psycopg.conninfo import conninfo_to_dict

import clusterdb.psycopg
from clusterdb.config import NodeEntry, cluster_from_kwargs
from clusterdb.drivers import get_adapter
from clusterdb.drivers.base import Pending, needs_no_lookup
from clusterdb.errors import ConfigError
from clusterdb.runtime.cluster import Cluster


def test_get_adapter_knows_drivers_by_name_and_module() -> None:
    assert get_adapter("psycopg") is get_adapter(psycopg)
    assert get_adapter("pymysql") is get_adapter(pymysql)
    assert get_adapter(clusterdb.psycopg) is get_adapter("psycopg")
    assert get_adapter("sqlite3").name == "sqlite3"
    assert get_adapter(psycopg).operational_error is psycopg.OperationalError
    assert get_adapter(pymysql).operational_error is pymysql.err.OperationalError
    with pytest.raises(ConfigError, match="not a PEP 249 module"):
        get_adapter(types.ModuleType("nothing_here"))
    with pytest.raises(ConfigError, match="cannot import driver 'no_such_driver_x'"):
        get_adapter("no_such_driver_x")


def test_psycopg_node_settings_win_over_cluster_settings() -> None:
    adapter = get_adapter("psycopg")
    node = NodeEntry(name="n", dsn="host=10.0.0.2 port=6432 dbname=nodedb application_name=x")
    args = adapter.connect_args(node, {"dbname": "app", "user": "u", "autocommit": True})
    params = conninfo_to_dict(args.args[0])
    assert params == {
        "host": "10.0.0.2",
        "port": "6432",
        "dbname": "nodedb",
        "user": "u",
        "application_name": "x",
    }
    assert args.kwargs == {"autocommit": True}  # Python settings stay keyword arguments

    mapped = NodeEntry(name="m", host="db1", port=5433, params={"sslmode": "disable"})
    params = conninfo_to_dict(adapter.connect_args(mapped, {"host": "ignored"}).args[0])
    assert (params["host"], params["port"], params["sslmode"]) == ("db1", "5433", "disable")


def test_psycopg_rejects_an_unknown_parameter_at_register_time() -> None:
    config = cluster_from_kwargs("p", "psycopg", [{"name": "n", "host": "h"}], {"dbnmae": "x"})
    with pytest.raises(ConfigError, match=r"clusters\.p\.nodes\[0\].*node 'n'.*dbnmae"):
        Cluster(config)


def test_pymysql_dsn_becomes_typed_keyword_arguments() -> None:
    adapter = get_adapter("pymysql")
    node = NodeEntry(
        name="n", dsn="mysql://app:pw@10.0.0.3:3307/appdb?ssl_disabled=true&read_timeout=2.5"
    )
    args = adapter.connect_args(node, {"dbname": "other", "charset": "utf8mb4"})
    assert args.args == ()
    assert args.kwargs == {
        "database": "appdb",
        "charset": "utf8mb4",
        "user": "app",
        "password": "pw",
        "host": "10.0.0.3",
        "port": 3307,
        "ssl_disabled": True,
        "read_timeout": 2.5,
    }


def test_pymysql_rejects_an_unknown_keyword_naming_it() -> None:
    adapter = get_adapter("pymysql")
    with pytest.raises(ConfigError, match="PyMySQL does not accept sslmode"):
        adapter.connect_args(NodeEntry(name="n", host="h"), {"sslmode": "require"})


def test_generic_driver_passes_the_dsn_first_and_sqlite_may_cross_threads() -> None:
    adapter = get_adapter(sqlite3)
    args = adapter.connect_args(NodeEntry(name="n", dsn="/tmp/x.db"), {"timeout": 2.0})
    assert args.args == ("/tmp/x.db",)
    factory = args.kwargs["factory"]  # a subclass, whose connections can carry their node
    assert issubclass(factory, sqlite3.Connection) and factory is not sqlite3.Connection
    assert args.kwargs == {"timeout": 2.0, "check_same_thread": False, "factory": factory}
    # Even when the caller asks otherwise: the connection is opened in a worker thread.
    args = adapter.connect_args(NodeEntry(name="n", dsn=":memory:"), {"check_same_thread": True})
    assert args.kwargs["check_same_thread"] is False


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("::1", True),
        ("[2001:db8::1]", True),
        ("/var/run/postgresql", True),
        ("@abstract", True),
        ("localhost", False),
        ("db.example.com", False),
        ("10.1.2", False),
        ("", False),
    ],
)
def test_needs_no_lookup(host: str, expected: bool) -> None:
    assert needs_no_lookup(host) is expected


@pytest.mark.parametrize("driver", ["psycopg", "pymysql"])
def test_a_node_named_by_hostname_is_started_on_a_worker_without_a_lookup_here(
    driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostname lookup cannot be paused or hedged: start() hands such an attempt to a worker
    at once, without resolving anything in the caller's thread."""

    def no_lookup(*args: object, **kwargs: object) -> None:
        raise AssertionError("start() looked a name up in the caller's thread")

    adapter = get_adapter(driver)
    node = NodeEntry(name="n", host="db.invalid", port=5432)
    target = adapter.connect_args(node, {"user": "app"})
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    begun = adapter.start(target, {}, 5.0, 0.5)
    assert isinstance(begun, Pending)


def test_a_psycopg_node_named_with_a_hostaddr_starts_in_the_calling_thread() -> None:
    """libpq connects to ``hostaddr`` and keeps the name for TLS and .pgpass: no lookup, so
    the attempt begins right here (a closed port refuses at once, raised here, not Pending)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once closed
    adapter = get_adapter("psycopg")
    node = NodeEntry(name="n", host="db.invalid", port=port, params={"hostaddr": "127.0.0.1"})
    target = adapter.connect_args(node, {"user": "app"})
    with pytest.raises(psycopg.OperationalError, match=r"refused|127\.0\.0\.1"):
        adapter.start(target, {}, 5.0, 0.5)


@pytest.mark.parametrize(
    ("conninfo", "libpq", "expected"),
    [
        ("host=127.0.0.1 port=5433 user=app", {"connect_timeout": 3}, {"port": "5433"}),
        ("host=/run/pg user=app", {"connect_timeout": 2}, {"host": "/run/pg"}),
        ("host=db.invalid hostaddr=10.0.0.1", {"connect_timeout": 2}, {"hostaddr": "10.0.0.1"}),
        ("host=127.0.0.1 user=app", {"connect_timeout": 2, "user": "ops"}, {"user": "ops"}),
        ("host=db.invalid user=app", {"connect_timeout": 2}, None),
        ("host=127.0.0.1,127.0.0.2 user=app", {"connect_timeout": 2}, None),
        ("host=127.0.0.1 port=5432,5433", {"connect_timeout": 2}, None),
    ],
)
def test_psycopg_direct_conninfo_is_one_attempt_on_one_address(
    conninfo: str, libpq: dict[str, Any], expected: dict[str, str] | None
) -> None:
    """The conninfo start() connects with, worked out once per node and timeout (cached),
    with every libpq parameter given on top: or None where psycopg's own attempts must run."""
    from clusterdb.drivers.psycopg import direct_conninfo

    for _ in range(2):  # the second answer comes from the cache when only the timeout is given
        got = direct_conninfo(conninfo, libpq)
        if expected is None:
            assert got is None
            continue
        assert got is not None
        params = conninfo_to_dict(got)
        assert params["connect_timeout"] == str(libpq["connect_timeout"])
        assert {k: params[k] for k in expected} == expected


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once closed


def test_pymysql_start_raises_pymysqls_error_for_a_refused_tcp_connect() -> None:
    """start() does not wait for the TCP connect on its own (the wait for the greeting covers
    it): a refusal that arrives while it waits is still PyMySQL's "can't connect" error."""
    adapter = get_adapter("pymysql")
    target = adapter.connect_args(NodeEntry(name="n", host="127.0.0.1", port=closed_port()), {})
    with pytest.raises(pymysql.err.OperationalError) as info:
        adapter.start(target, {}, 5.0, 0.5)
    assert info.value.args[0] == 2003 and "refused" in str(info.value)


def test_pymysql_start_hands_a_tcp_connect_with_no_answer_to_a_worker() -> None:
    """A SYN nobody answers (here: a listener whose accept queue is full) is a silent node:
    a Pending attempt within the patience, failing once the worker's time is up."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        queued = [socket.socket() for _ in range(3)]  # fill the accept queue, never accepted
        try:
            for sock in queued:
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
            adapter = get_adapter("pymysql")
            target = adapter.connect_args(NodeEntry(name="n", host="127.0.0.1", port=port), {})
            begun = adapter.start(target, {}, 5.0, 0.05)
            assert isinstance(begun, Pending)
            with pytest.raises(pymysql.err.OperationalError) as info:
                begun.finish(0.1)
            assert "no answer to the TCP connect" in str(info.value)
        finally:
            for sock in queued:
                sock.close()


def test_pymysql_start_reads_an_ipv6_scope_without_asking_a_resolver(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fe80::1%lo`` needs its scope turned into an interface index: getaddrinfo() does
    that, numerically, in the calling thread (no resolver: nothing to hedge)."""
    asked: list[int] = []
    real = socket.getaddrinfo

    def numeric_only(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("flags", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    adapter = get_adapter("pymysql")
    target = adapter.connect_args(NodeEntry(name="n", host="fe80::1%lo", port=3306), {})
    # No route to a link-local address on the loopback interface: refused at once, as
    # PyMySQL would refuse it, and not a Pending attempt.
    with pytest.raises(pymysql.err.OperationalError) as info:
        adapter.start(target, {}, 5.0, 0.5)
    assert info.value.args[0] == 2003
    assert asked and all(flags & socket.AI_NUMERICHOST for flags in asked)
