"""The asyncio adapters without a server: PyMySQL's keywords as asyncmy takes them, and which
drivers have an asyncio counterpart."""

from __future__ import annotations

import ssl

import asyncmy.cursors
import pymysql.cursors
import pytest

from clusterdb.drivers import get_async_adapter
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.drivers.mysql_async import AsyncmyAdapter, asyncmy_kwargs
from clusterdb.drivers.psycopg import PsycopgAdapter
from clusterdb.drivers.psycopg_async import PsycopgAsyncAdapter
from clusterdb.drivers.pymysql import PyMySQLAdapter
from clusterdb.errors import ConfigError, InterfaceError


def test_pymysql_keywords_become_asyncmys() -> None:
    out = asyncmy_kwargs(
        {
            "host": "10.0.0.1",
            "port": 3306,
            "user": "app",
            "passwd": "pw",
            "db": "shop",
            "cursorclass": pymysql.cursors.DictCursor,
            "read_timeout": 5.0,
            "write_timeout": 5.0,
            "ssl_disabled": True,
            "autocommit": True,
            "charset": "utf8mb4",
        }
    )
    assert out == {
        "host": "10.0.0.1",
        "port": 3306,
        "user": "app",
        "password": "pw",
        "database": "shop",
        "cursor_cls": asyncmy.cursors.DictCursor,
        "read_timeout": 5.0,
        "autocommit": True,
        "charset": "utf8mb4",
    }


def test_tls_is_asked_for_as_pymysql_would_require_it() -> None:
    assert "ssl" not in asyncmy_kwargs({"host": "h"})  # PyMySQL's "preferred": no TLS here
    context = ssl.create_default_context()
    assert asyncmy_kwargs({"ssl": context})["ssl"] is context
    assert "ssl" not in asyncmy_kwargs({"ssl": context, "ssl_disabled": True})
    made = asyncmy_kwargs({"ssl_verify_cert": True})["ssl"]
    assert isinstance(made, ssl.SSLContext) and made.verify_mode == ssl.CERT_REQUIRED


def test_keywords_asyncmy_has_no_use_for_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="asyncmy does not accept bind_address, compress"):
        asyncmy_kwargs({"host": "h", "compress": True, "bind_address": "10.0.0.2"})
    with pytest.raises(ConfigError, match="cursorclass"):
        asyncmy_kwargs({"cursorclass": dict})


def test_each_driver_has_its_asyncio_counterpart() -> None:
    assert isinstance(get_async_adapter(PsycopgAdapter()), PsycopgAsyncAdapter)
    assert isinstance(get_async_adapter(PyMySQLAdapter()), AsyncmyAdapter)
    with pytest.raises(InterfaceError, match="'psycopg' or 'pymysql'"):
        get_async_adapter(GenericAdapter(__import__("sqlite3")))


def test_create_async_engine_refuses_a_creator_a_bad_role_and_a_driver_without_dialect() -> None:
    import clusterdb
    import clusterdb.sqlalchemy

    clusterdb.register("lite-async", "sqlite3", [":memory:"], monitor=False)
    try:
        with pytest.raises(ConfigError, match="async_creator"):
            clusterdb.sqlalchemy.create_async_engine("lite-async", async_creator=lambda: None)
        with pytest.raises(ConfigError, match="role"):
            clusterdb.sqlalchemy.create_async_engine("lite-async", role="leader")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="no SQLAlchemy dialect known for driver 'sqlite3'"):
            clusterdb.sqlalchemy.create_async_engine("lite-async")
    finally:
        clusterdb.unregister("lite-async")
