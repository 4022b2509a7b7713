"""One PyMySQL registration, the same TLS on connect() and connect_async(): PyMySQL 1.2 uses
TLS whenever the server offers it ("preferred") unless ``ssl_disabled``; clusterdb's asyncmy
path does the same, on real MariaDB servers (the harness's MariaDB offers TLS when it has a
certificate: ``tls=True`` makes one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from connect_support import registered

import clusterdb
from clusterdb.testing.mariadb import MariaDBCluster

pytestmark = pytest.mark.mariadb

CIPHER_SQL = "SHOW SESSION STATUS LIKE 'Ssl_cipher'"


def _sync_cipher(name: str) -> str:
    conn = clusterdb.connect(name, role="primary")
    try:
        with conn.cursor() as cur:
            cur.execute(CIPHER_SQL)
            row: Any = cur.fetchone()
    finally:
        conn.close()
    return str(row[1])


def _async_cipher(name: str) -> str:
    async def main() -> str:
        conn = await clusterdb.connect_async(name, role="primary")
        try:
            async with conn.cursor() as cur:
                await cur.execute(CIPHER_SQL)
                row: Any = await cur.fetchone()
        finally:
            conn.close()
        return str(row[1])

    return asyncio.run(main())


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "proxied"])
def test_tls_when_the_server_offers_it_on_both_paths(
    make_mariadb_cluster: Callable[..., MariaDBCluster], direct: bool
) -> None:
    harness = make_mariadb_cluster(replicas=0, tls=True)
    extra: dict[str, Any] = {"nodes": harness.node_specs(via_proxy=False)} if direct else {}
    with registered(harness, **extra) as name:
        sync, via_asyncio = _sync_cipher(name), _async_cipher(name)
        again = _async_cipher(name)  # the kept keywords, second time round
    assert sync, "PyMySQL uses the TLS the server offers"
    assert via_asyncio == again == sync, (sync, via_asyncio, again)
    with registered(harness, ssl_disabled=True, **extra) as name:
        assert _sync_cipher(name) == _async_cipher(name) == ""


def test_no_tls_when_the_server_offers_none(mariadb_cluster: MariaDBCluster) -> None:
    with registered(mariadb_cluster) as name:
        assert _sync_cipher(name) == _async_cipher(name) == ""
