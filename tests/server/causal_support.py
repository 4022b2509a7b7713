"""Helpers of the read-your-writes token tests: a fresh table and a late replica."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from connect_support import registered

import clusterdb
from clusterdb.testing.cluster import Cluster, TestNode


@contextlib.contextmanager
def delayed_table(
    harness: Cluster, late: TestNode, delay: float, setup: Sequence[str], drop: str
) -> Iterator[str]:
    """A fresh table (``setup`` statements run as admin on the primary, ``{table}`` filled
    in), on every replica, then ``late`` applying changes ``delay`` s late; dropped after."""
    table = f"ryw_{uuid.uuid4().hex[:8]}"
    for sql in setup:
        harness.execute(harness.primary, sql.format(table=table))
    harness.wait_caught_up()
    harness.set_replication_delay(late, delay)
    try:
        yield table
    finally:
        harness.set_replication_delay(late, 0.0)
        harness.execute(harness.primary, drop.format(table=table))


def node_name(conn: Any) -> str:
    """The node of a connection clusterdb returned."""
    ref = clusterdb.node_of(conn)
    assert ref is not None
    return ref.node


@contextlib.contextmanager
def two_registrations(harness: Cluster) -> Iterator[tuple[str, str, str]]:
    """Two clusterdb clusters over ``harness``: (one, other, a token taken on one's primary)."""
    with registered(harness) as one, registered(harness) as other:
        with contextlib.closing(clusterdb.connect(one, role="primary")) as conn:
            token = clusterdb.causal_token(conn)
        yield one, other, token
