"""Real local PostgreSQL, MariaDB, Galera and Patroni clusters with faults on command, for tests.

::

    from clusterdb.testing import PostgresCluster

    with PostgresCluster(replicas=2) as pg:
        pg.primary.kill()
        pg.promote(pg.replicas[0])

See :class:`Cluster` for the operations, :class:`TestNode` for per-node faults and
:class:`Proxy` for latency, "deaf" and "refuse" modes. The pytest plugin
(``clusterdb.testing.pytest_plugin``) provides ready-made fixtures.
"""

from clusterdb.testing.cluster import Cluster, TestNode
from clusterdb.testing.errors import HarnessError
from clusterdb.testing.galera import GaleraCluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.patroni import PatroniCluster
from clusterdb.testing.postgres import PostgresCluster
from clusterdb.testing.proxy import Proxy

__all__ = [
    "Cluster",
    "GaleraCluster",
    "HarnessError",
    "MariaDBCluster",
    "PatroniCluster",
    "PostgresCluster",
    "Proxy",
    "TestNode",
]
