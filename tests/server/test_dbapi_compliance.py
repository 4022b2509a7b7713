"""The classic DB-API 2.0 compliance suite (``dbapi20``, from the dbapi-compliance package):
``clusterdb.psycopg`` and ``clusterdb.pymysql`` pass and fail exactly the tests their drivers
pass and fail when used directly."""

from __future__ import annotations

import unittest
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import dbapi20
import psycopg
import pymysql
import pytest
from connect_support import registered

import clusterdb.psycopg
import clusterdb.pymysql
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster


def outcomes(
    driver: ModuleType, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, str]:
    """Run the suite against ``driver.connect(*args, **kwargs)``: test name -> outcome."""
    case = type(
        "Compliance",
        (dbapi20.DatabaseAPI20Test,),
        {"driver": driver, "connect_args": args, "connect_kw_args": dict(kwargs)},
    )
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    # Names first: run() empties the suite.
    found = {t.id().rsplit(".", 1)[-1]: "pass" for t in suite if isinstance(t, unittest.TestCase)}
    result = unittest.TestResult()
    suite.run(result)
    for kind, items in (("fail", result.failures), ("error", result.errors)):
        for test, _ in items:
            found[test.id().rsplit(".", 1)[-1]] = kind
    for test, _ in result.skipped:
        found[test.id().rsplit(".", 1)[-1]] = "skip"
    return found


def assert_same(ours: dict[str, str], theirs: dict[str, str]) -> None:
    differ = {t: (ours.get(t), theirs.get(t)) for t in ours.keys() | theirs.keys()}
    assert {t: v for t, v in differ.items() if v[0] != v[1]} == {}
    passed = [t for t, v in ours.items() if v == "pass"]
    assert len(passed) >= 25, ours  # the suite really ran against a live server


@pytest.mark.postgres
def test_clusterdb_psycopg_matches_psycopg(pg_cluster: PostgresCluster) -> None:
    direct = pg_cluster.connect_kwargs(pg_cluster.primary)
    theirs = outcomes(psycopg, (), direct)
    with registered(pg_cluster) as name:
        # DDL needs the primary; the other nodes of the cluster are read-only replicas.
        ours = outcomes(clusterdb.psycopg, (name,), {"role": "primary"})
    assert_same(ours, theirs)


@pytest.mark.mariadb
def test_clusterdb_pymysql_matches_pymysql(mariadb_cluster: MariaDBCluster) -> None:
    direct = mariadb_cluster.connect_kwargs(mariadb_cluster.primary)
    theirs = outcomes(pymysql, (), direct)
    with registered(mariadb_cluster) as name:
        ours = outcomes(clusterdb.pymysql, (name,), {"role": "primary"})
    assert_same(ours, theirs)
