"""A node removed between a connect's plan and its first attempt (sync and asyncio, the
attempt begun in the caller): the attempt fails before any I/O, the connect goes on to the
next node, and the removed node's late count is consumed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from async_fakes import InlineFakeAdapter, ok, settle
from async_fakes import make_cluster as make_async_cluster
from test_connect_fast_path import make_cluster

from clusterdb import drivers
from clusterdb.core.description import ClusterDescription, WantedRole
from clusterdb.core.selection import Plan
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect
from clusterdb.runtime.connect_async import connect_async


def remove_after_planning(cluster: Cluster) -> list[str]:
    """Make the cluster's next plan lose its first node as soon as it is made."""
    removed: list[str] = []
    begin = cluster.begin

    def planned_then_removed(
        wanted: WantedRole, prefer: str | None = None, avoid: Any = None
    ) -> tuple[Plan, ClusterDescription]:
        chosen: Plan = begin(wanted, prefer, avoid)[0]
        removed.append(chosen.nodes[0])
        cluster.remove_node(chosen.nodes[0])
        cluster.begin = begin  # type: ignore[method-assign]
        return chosen, cluster.describe()

    cluster.begin = planned_then_removed  # type: ignore[method-assign]
    return removed


def idle(cluster: Cluster) -> bool:
    cluster.fold()
    return (cluster._in_flight, cluster._stale) == (0, {})


def test_connect_goes_on_when_its_first_node_was_removed(tmp_path: Path) -> None:
    cluster, adapter = make_cluster(tmp_path)
    removed = remove_after_planning(cluster)
    conn = connect(cluster, "any", {})
    conn.close()
    assert removed == ["a"]  # the fastest, first of a best-first plan
    assert "a" not in adapter.started_in  # no attempt reached it
    snap = cluster.stats_snapshot()
    assert (snap.connects, snap.failures) == (1, 0)
    assert [n.name for n in snap.nodes] == ["b", "c"]
    assert idle(cluster)


@pytest.fixture
def fake_driver() -> Iterator[None]:
    yield
    drivers._async_cache.pop("fake", None)


@pytest.mark.usefixtures("fake_driver")
def test_connect_async_goes_on_when_its_first_node_was_removed() -> None:
    async def main() -> None:
        cluster = make_async_cluster()
        adapter = InlineFakeAdapter(a=ok(), b=ok(), c=ok())
        drivers._async_cache["fake"] = adapter
        for _ in range(10):  # learnt: best-first plans
            (await connect_async(cluster, "any", {})).closed = True
        await settle(cluster)
        adapter.started.clear()
        removed = remove_after_planning(cluster)
        conn = await connect_async(cluster, "any", {})
        assert removed and conn.node != removed[0]
        assert removed[0] not in adapter.started
        await settle(cluster)
        assert idle(cluster)

    asyncio.run(main())
