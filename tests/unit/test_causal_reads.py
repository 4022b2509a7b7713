"""The causal_reads option's checks (no server: tests/server/test_galera_causal.py has the
reads themselves)."""

from __future__ import annotations

import pytest

import clusterdb
from clusterdb.config import cluster_from_kwargs
from clusterdb.drivers import get_adapter
from clusterdb.drivers.bind import CAUSAL_READS, bind_nodes
from clusterdb.drivers.mysql_async import asyncmy_kwargs


def test_every_node_gets_the_init_command_and_asyncmy_takes_it() -> None:
    config = cluster_from_kwargs(
        "g", "pymysql", ["mysql://h1", "mysql://h2"], {"causal_reads": True}
    )
    for target in bind_nodes(config, get_adapter("pymysql")):
        assert target.kwargs["init_command"] == CAUSAL_READS
        assert asyncmy_kwargs(target.kwargs)["init_command"] == CAUSAL_READS
    plain = cluster_from_kwargs("g", "pymysql", ["mysql://h1"], {})
    assert "init_command" not in bind_nodes(plain, get_adapter("pymysql"))[0].kwargs


def test_causal_reads_are_refused_outside_galera() -> None:
    with pytest.raises(clusterdb.ConfigError, match="causal_reads: needs a MariaDB Galera"):
        clusterdb.register("x", driver="psycopg", nodes=["host=h"], causal_reads=True)
    with pytest.raises(clusterdb.ConfigError, match="causal_reads: needs Galera"):
        clusterdb.register(
            "x", driver="pymysql", nodes=["mysql://h"], causal_reads=True, topology="replication"
        )
    with pytest.raises(clusterdb.ConfigError, match="causal_reads sets init_command"):
        clusterdb.register(
            "x", driver="pymysql", nodes=["mysql://h"], causal_reads=True, init_command="SET x=1"
        )
