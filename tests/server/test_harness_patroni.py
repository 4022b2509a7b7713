"""clusterdb.testing.PatroniCluster: real Patroni over a real etcd. One cluster goes through
every fault in turn (each start costs ~25 s): switchover, the leader killed (Patroni fails
over once the leader key expires), a member added, etcd stopped and started again."""

from __future__ import annotations

import time

import pytest

from clusterdb.testing import cleanup
from clusterdb.testing.patroni import PatroniCluster


@pytest.mark.patroni
@pytest.mark.timeout(400)
def test_patroni_cluster_faults() -> None:
    cluster = PatroniCluster(members=3)
    with cluster:
        base = cluster.base
        assert base is not None and base.name.startswith(cleanup.PREFIX)
        leader = cluster.leader()
        assert leader is not None and len(cluster.replicas()) == 2
        assert cluster.execute(leader, cluster.WHOAMI_SQL) == [(leader,)]
        assert cluster.execute(leader, "SELECT pg_is_in_recovery()") == [(False,)]

        new = cluster.switchover()
        assert new != leader and cluster.leader() == new
        assert cluster.execute(new, "SELECT pg_is_in_recovery()") == [(False,)]

        killed = cluster.kill_leader()
        promoted = cluster.wait_leader(other_than=killed, timeout=60)
        assert promoted != killed
        assert cluster.execute(promoted, "SELECT pg_is_in_recovery()") == [(False,)]

        added = cluster.add_member()
        assert added.name == "m4" and added.name in cluster.replicas()
        assert cluster.execute(added.name, "SELECT pg_is_in_recovery()") == [(True,)]

        cluster.stop_etcd()
        assert not cluster.etcd.alive()  # type: ignore[union-attr]
        # PostgreSQL goes on as it was: the leader answers queries while etcd is gone.
        assert cluster.execute(promoted, cluster.WHOAMI_SQL) == [(promoted,)]
        cluster.start_etcd()
        assert cluster.wait_leader(timeout=60)
        time.sleep(0.1)
    assert not base.exists()
