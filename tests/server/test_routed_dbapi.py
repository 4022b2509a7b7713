"""The DB-API 2.0 compliance suite (dbapi20) through connect(role="auto"): a routed connection
passes and fails exactly the tests the driver passes and fails on the primary, in autocommit
mode (reads on replicas, with read-your-writes) and with autocommit off (all on the primary)."""

from __future__ import annotations

import types
from typing import Any

import psycopg
import pymysql
import pytest
from connect_support import registered
from test_dbapi_compliance import assert_same, outcomes

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


def routed_module(driver: types.ModuleType, name: str) -> types.ModuleType:
    """``driver``'s DB-API globals and exceptions, with connect() making routed connections."""
    module = types.ModuleType(f"routed_{driver.__name__}")
    module.__dict__.update({k: v for k, v in vars(driver).items() if not k.startswith("__")})

    def connect(**kwargs: Any) -> clusterdb.RoutedConnection:
        conn: clusterdb.RoutedConnection = clusterdb.connect(name, role="auto", **kwargs)
        return conn

    module.connect = connect  # type: ignore[attr-defined]
    return module


def _compare(cluster: Cluster, driver: types.ModuleType, autocommit: bool) -> None:
    direct = cluster.connect_kwargs(cluster.primary)
    theirs = outcomes(driver, (), {**direct, "autocommit": autocommit})
    with registered(cluster) as name:
        ours = outcomes(routed_module(driver, name), (), {"autocommit": autocommit})
    assert_same(ours, theirs)


@pytest.mark.postgres
@pytest.mark.parametrize("autocommit", [True, False])
def test_routed_psycopg_matches_psycopg(pg_cluster: PostgresCluster, autocommit: bool) -> None:
    _compare(pg_cluster, psycopg, autocommit)


@pytest.mark.mariadb
@pytest.mark.parametrize("autocommit", [True, False])
def test_routed_pymysql_matches_pymysql(mariadb_cluster: MariaDBCluster, autocommit: bool) -> None:
    _compare(mariadb_cluster, pymysql, autocommit)
