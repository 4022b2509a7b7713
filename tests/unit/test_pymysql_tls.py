"""PyMySQL's "preferred" TLS context is made once per process, and only that one."""

from __future__ import annotations

import ssl

import pymysql.connections

from clusterdb.drivers.mysql_async import asyncmy_kwargs
from clusterdb.drivers.pymysql_gtid import TrackingConnection
from clusterdb.drivers.pymysql_tls import preferred_context


def test_connections_without_ssl_settings_share_pymysqls_preferred_context() -> None:
    first = TrackingConnection(defer_connect=True)
    second = TrackingConnection(defer_connect=True, host="127.0.0.2")
    assert first.ssl and not first._ssl_required  # PyMySQL's preferred mode, as PyMySQL's own
    assert first.ctx is second.ctx is preferred_context()
    plain = pymysql.connections.Connection(defer_connect=True)  # PyMySQL's: made anew
    assert plain.ctx is not first.ctx
    for attribute in ("verify_mode", "check_hostname", "options", "minimum_version"):
        assert getattr(first.ctx, attribute) == getattr(plain.ctx, attribute)
    # asyncmy's preferred TLS gets the same context.
    assert asyncmy_kwargs({"host": "h"})["_clusterdb_preferred_tls"] is first.ctx


def test_ssl_settings_still_get_a_context_of_their_own_and_disabled_gets_none() -> None:
    shared = preferred_context()
    required = TrackingConnection(defer_connect=True, ssl_verify_cert=True)
    assert required._ssl_required and required.ctx is not shared
    assert required.ctx.verify_mode == ssl.CERT_REQUIRED
    mine = ssl.create_default_context()
    given = TrackingConnection(defer_connect=True, ssl=mine)
    assert given.ctx is mine
    off = TrackingConnection(defer_connect=True, ssl_disabled=True)
    assert not off.ssl
