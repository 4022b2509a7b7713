"""pytest fixtures for real test clusters (registered through the ``pytest11`` entry point).

* ``pg_cluster_session`` / ``mariadb_cluster_session`` / ``galera_cluster_session``: a
  PostgreSQL 1+2, a MariaDB 1+1 and a 3-node Galera cluster shared by the session, started on
  first use.
* ``pg_cluster`` / ``mariadb_cluster`` / ``galera_cluster``: the same clusters, healed after
  every test.
* ``make_pg_cluster(replicas=N)`` / ``make_mariadb_cluster(replicas=N)`` /
  ``make_galera_cluster(nodes=N)``: other shapes, all stopped at the end of the test.
* ``patroni_cluster``: a fresh 3-member Patroni cluster over etcd per test (its faults change
  the cluster for good); ``make_patroni_cluster(members=N)`` for other sizes.

Missing server binaries make these fixtures error with the command to install them; they
never skip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from clusterdb.testing.cluster import Cluster
from clusterdb.testing.galera import GaleraCluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.patroni import PatroniCluster
from clusterdb.testing.postgres import PostgresCluster

_C = TypeVar("_C", bound=Cluster)


def _session(cluster: _C) -> Iterator[_C]:
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def _healed(cluster: _C) -> Iterator[_C]:
    yield cluster
    try:
        cluster.heal()
    except Exception:
        # Never hand a broken cluster to the next test: start over from the template (same
        # ports), or from nothing, and still report this test's teardown as failed.
        try:
            cluster.recreate()
        except Exception:
            cluster.stop()
            cluster.start()
        raise


def _factory(cls: Callable[..., _C]) -> Iterator[Callable[..., _C]]:
    made: list[_C] = []

    def make(**shape: int) -> _C:
        cluster = cls(**shape)
        made.append(cluster)
        cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster_session() -> Iterator[PostgresCluster]:
    """A PostgreSQL primary with two replicas, shared by the whole session."""
    yield from _session(PostgresCluster(replicas=2))


@pytest.fixture(scope="session")
def mariadb_cluster_session() -> Iterator[MariaDBCluster]:
    """A MariaDB primary with one replica, shared by the whole session."""
    yield from _session(MariaDBCluster(replicas=1))


@pytest.fixture
def pg_cluster(pg_cluster_session: PostgresCluster) -> Iterator[PostgresCluster]:
    """The session's PostgreSQL 1+2 cluster, healed after the test."""
    yield from _healed(pg_cluster_session)


@pytest.fixture
def mariadb_cluster(mariadb_cluster_session: MariaDBCluster) -> Iterator[MariaDBCluster]:
    """The session's MariaDB 1+1 cluster, healed after the test."""
    yield from _healed(mariadb_cluster_session)


@pytest.fixture
def make_pg_cluster() -> Iterator[Callable[..., PostgresCluster]]:
    """``make_pg_cluster(replicas=N)`` starts a PostgreSQL cluster stopped after the test."""
    yield from _factory(PostgresCluster)


@pytest.fixture
def make_mariadb_cluster() -> Iterator[Callable[..., MariaDBCluster]]:
    """``make_mariadb_cluster(replicas=N)`` starts a MariaDB cluster stopped after the test."""
    yield from _factory(MariaDBCluster)


@pytest.fixture(scope="session")
def galera_cluster_session() -> Iterator[GaleraCluster]:
    """A three-node Galera cluster, shared by the whole session."""
    yield from _session(GaleraCluster(nodes=3))


@pytest.fixture
def galera_cluster(galera_cluster_session: GaleraCluster) -> Iterator[GaleraCluster]:
    """The session's Galera cluster, healed after the test."""
    yield from _healed(galera_cluster_session)


@pytest.fixture
def make_galera_cluster() -> Iterator[Callable[..., GaleraCluster]]:
    """``make_galera_cluster(nodes=N)`` starts a Galera cluster stopped after the test."""
    yield from _factory(GaleraCluster)


@pytest.fixture
def patroni_cluster() -> Iterator[PatroniCluster]:
    """A fresh Patroni cluster of three members over its own etcd, stopped after the test."""
    with PatroniCluster(members=3) as cluster:
        yield cluster


@pytest.fixture
def make_patroni_cluster() -> Iterator[Callable[..., PatroniCluster]]:
    """``make_patroni_cluster(members=N)`` starts a Patroni cluster stopped after the test."""
    made: list[PatroniCluster] = []

    def make(members: int = 3) -> PatroniCluster:
        made.append(PatroniCluster(members=members))
        made[-1].start()
        return made[-1]

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()
