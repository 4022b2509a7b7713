"""query_timeout (issue 16): the connect() argument and the cluster option, checked as every
other option is (pure, no server)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

import clusterdb
from clusterdb.config import cluster_from_kwargs
from clusterdb.core.request import query_timeout_request
from clusterdb.errors import ConfigError


@pytest.mark.parametrize(
    ("overrides", "default", "expected"),
    [
        ({}, None, None),
        ({}, 30.0, 30.0),
        ({"query_timeout": 0.5}, None, 0.5),
        ({"query_timeout": 2}, 30.0, 2.0),
        ({"query_timeout": None}, 30.0, None),  # no bound for this connection
    ],
)
def test_query_timeout_is_taken_out_of_the_overrides(
    overrides: dict[str, Any], default: float | None, expected: float | None
) -> None:
    given = {**overrides, "user": "u"}
    assert query_timeout_request(given, default) == expected
    assert given == {"user": "u"}  # never passed on to the driver


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_a_bad_query_timeout_names_itself(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        query_timeout_request({"query_timeout": value}, None)
    assert info.value.path == "query_timeout"


def test_the_cluster_option_defaults_to_no_bound_and_is_checked() -> None:
    config = cluster_from_kwargs("c", sqlite3, [":memory:"], {})
    assert config.options.query_timeout is None
    config = cluster_from_kwargs("c", sqlite3, [":memory:"], {"query_timeout": 2.5})
    assert config.options.query_timeout == 2.5
    assert "query_timeout" not in config.connect_kwargs
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", sqlite3, [":memory:"], {"query_timeout": 0})
    assert info.value.path == "clusters.c.query_timeout"


def test_a_generic_driver_connection_is_returned_unbounded() -> None:
    # sqlite3 has no mechanism: the option is accepted, the connection is sqlite3's own.
    clusterdb.register("qt-sqlite", driver=sqlite3, nodes=[":memory:"], monitor=False)
    try:
        conn = clusterdb.connect("qt-sqlite", query_timeout=1.0)
        assert isinstance(conn, sqlite3.Connection)
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.close()
    finally:
        clusterdb.unregister("qt-sqlite")
