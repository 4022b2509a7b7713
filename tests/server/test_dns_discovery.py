"""DNS discovery against real PostgreSQL servers (issue 18): a name whose A records the test
controls (through the resolver seam, clusterdb.runtime.dns.use_resolver) points at proxies on
distinct loopback addresses (127.0.0.2-4, one port) in front of the harness's nodes. A change
of the records is followed within one heartbeat, and the new address gets connections."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import clusterdb
from clusterdb.runtime import dns, process
from clusterdb.testing.postgres import PostgresCluster
from clusterdb.testing.proxy import Proxy

HEARTBEAT = 1.0


@pytest.fixture
def records() -> Iterator[dict[str, list[str]]]:
    table: dict[str, list[str]] = {}
    old = dns.use_resolver(dns.Resolver(addresses=lambda host: list(table[host])))
    try:
        yield table
    finally:
        dns.use_resolver(old)


def _nodes(name: str) -> set[str]:
    return {n.name for n in clusterdb.stats.snapshot(name).nodes}


@pytest.mark.postgres
def test_records_changing_are_followed_within_a_heartbeat(
    pg_cluster: PostgresCluster, records: dict[str, list[str]]
) -> None:
    upstreams = [pg_cluster.primary, *pg_cluster.replicas]
    first = Proxy("127.0.0.1", upstreams[0].port, host="127.0.0.2")
    proxies = [first] + [
        Proxy("127.0.0.1", n.port, host=f"127.0.0.{i + 3}", port=first.port)
        for i, n in enumerate(upstreams[1:])
    ]
    port = first.port
    records["db.test"] = ["127.0.0.2", "127.0.0.3"]
    settings = pg_cluster.register_kwargs()
    settings.update(nodes=[], dns=f"db.test:{port}", heartbeat=HEARTBEAT, monitor=True)
    try:
        clusterdb.register("dnsd", **settings)
        a, b, c = (f"db.test[127.0.0.{i}]:{port}" for i in (2, 3, 4))
        assert _nodes("dnsd") == {a, b}
        # The hostname is kept for TLS: libpq gets host=<name> hostaddr=<address>.
        conninfo = process.get("dnsd").target(a).args[0]
        assert "host=db.test" in conninfo and "hostaddr=127.0.0.2" in conninfo
        clusterdb.connect("dnsd", role="primary").close()

        records["db.test"] = ["127.0.0.2", "127.0.0.4"]
        changed = time.monotonic()
        while _nodes("dnsd") != {a, c} and time.monotonic() < changed + 10:
            time.sleep(0.02)
        followed = time.monotonic() - changed
        assert _nodes("dnsd") == {a, c}
        print(f"DNS change followed in {followed:.2f} s (heartbeat {HEARTBEAT} s)")
        assert followed < HEARTBEAT + 0.5  # one heartbeat, and the poll itself

        landed = set()
        deadline = time.monotonic() + 10
        while c not in landed and time.monotonic() < deadline:
            conn = clusterdb.connect("dnsd", role="replica")
            ref = clusterdb.node_of(conn)
            conn.close()
            assert ref is not None
            landed.add(ref.node)
        assert c in landed and b not in landed
    finally:
        if "dnsd" in clusterdb.clusters():
            clusterdb.unregister("dnsd")
        for proxy in proxies:
            proxy.close()
