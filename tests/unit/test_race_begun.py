"""The first attempt begun in the calling thread (``begin_here``, then ``race(..., begun=...)``
as connect() does), as PyMySQL does.

``start(node, timeout, patience)`` returns a connection when the node answered within its
patience (the hedge delay), raises when it refused, or returns a Pending attempt that a worker
thread finishes while the race hedges. Timing bounds follow test_race's rule: 10x clear.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any

import pytest
from fakes import (
    NODES,
    Attempts,
    Conn,
    RoleAdapter,
    fail,
    hang,
    make_cluster,
    ok,
    settle,
    totals,
)

from clusterdb.core.selection import Plan
from clusterdb.drivers.base import Pending
from clusterdb.errors import AllNodesFailed
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import begin_here
from clusterdb.runtime.race import Begun, race

pytestmark = pytest.mark.usefixtures("no_thread_left")


class Starts:
    """The ``start`` function: per node, a connection, an error, or a Pending attempt."""

    def __init__(self, **outcomes: Any) -> None:
        self.outcomes = outcomes
        self.threads: dict[str, threading.Thread] = {}
        self.patience: dict[str, float] = {}
        self.cancelled = threading.Event()

    def __call__(self, node: str, timeout: float, patience: float) -> Any:
        self.threads[node] = threading.current_thread()
        self.patience[node] = patience
        outcome = self.outcomes[node]
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return Pending(outcome, self.cancelled.set)
        return outcome


def run_inline(
    cluster: Cluster, starts: Starts, attempts: Attempts, delay: float = 5.0, **kw: Any
) -> Any:
    """What connect() does for a driver that starts inline, with ``starts`` as its start()."""
    timeout = 10.0
    plan = Plan(nodes=NODES, hedge_delays=tuple(delay for _ in NODES), race=False)
    cluster.attempt_started(NODES[0])  # as cluster.begin() does
    began = time.monotonic()
    patience = min(plan.hedge_delays[0], timeout)
    outcome = begin_here(cluster, NODES[0], starts, NODES[0], timeout, patience)
    begun = Begun(outcome, began)
    return race(cluster, plan, attempts, timeout=timeout, begun=begun, **kw)


def test_a_node_that_answers_is_connected_in_the_calling_thread() -> None:
    cluster = make_cluster()
    starts = Starts(a=Conn("a"))
    attempts = Attempts(a=ok(), b=ok(), c=ok())
    conn = run_inline(cluster, starts, attempts, delay=0.25)
    assert conn.node == "a"
    assert starts.threads["a"] is threading.current_thread()
    assert starts.patience["a"] == pytest.approx(0.25, abs=0.01)  # the hedge delay
    assert attempts.started == {}  # no worker attempt at all
    assert totals(cluster) == {"connects": 1, "errors": 0, "discarded": 0, "pending": 0}
    latency = next(n for n in cluster.stats_snapshot().nodes if n.name == "a").latency_ms
    assert latency is not None


def test_a_refusing_node_is_counted_and_the_next_one_tried_at_once() -> None:
    cluster = make_cluster()
    starts = Starts(a=ConnectionRefusedError("a: refused"))
    attempts = Attempts(a=ok(), b=ok(), c=ok())
    began = time.monotonic()
    conn = run_inline(cluster, starts, attempts, delay=5.0)
    assert conn.node == "b"
    assert time.monotonic() - began < 0.5  # not after the 5 s hedge delay
    settle(cluster)
    nodes = {n.name: n for n in cluster.stats_snapshot().nodes}
    assert nodes["a"].connect_errors == 1 and nodes["a"].state == "down"
    assert "refused" in (nodes["a"].last_error or "")


def test_a_silent_node_is_finished_by_a_worker_while_the_next_node_is_hedged(
    release: threading.Event,
) -> None:
    cluster = make_cluster()
    finished_in: list[threading.Thread] = []

    def finish_a(timeout: float) -> Conn:
        finished_in.append(threading.current_thread())
        release.wait(30)
        return Conn("a")

    starts = Starts(a=finish_a)
    attempts = Attempts(a=ok(), b=ok(), c=ok())
    conn = run_inline(cluster, starts, attempts, delay=0.05)
    assert conn.node == "b"  # hedged to b right after a's patience ran out
    release.set()
    settle(cluster)
    assert finished_in and finished_in[0] is not threading.current_thread()
    # a's late connection was counted and closed, never handed out
    assert totals(cluster) == {"connects": 2, "errors": 0, "discarded": 1, "pending": 0}


def test_a_silent_node_that_answers_in_its_worker_wins() -> None:
    cluster = make_cluster()
    starts = Starts(a=lambda timeout: Conn("a"))
    attempts = Attempts(a=ok(), b=hang(threading.Event()), c=ok())
    conn = run_inline(cluster, starts, attempts, delay=5.0)
    assert conn.node == "a"
    assert "b" not in attempts.started
    assert totals(cluster)["connects"] == 1


def test_every_failure_is_reported_with_the_inline_one_first() -> None:
    cluster = make_cluster()
    starts = Starts(a=ConnectionRefusedError("a: refused"))
    attempts = Attempts(a=ok(), b=fail(), c=fail())
    with pytest.raises(AllNodesFailed) as info:
        run_inline(cluster, starts, attempts, delay=5.0)
    assert list(info.value.errors) == list(NODES)
    settle(cluster)
    assert totals(cluster)["errors"] == 3


def test_an_interrupt_in_the_calling_thread_propagates_and_leaves_nothing_pending() -> None:
    cluster = make_cluster()
    starts = Starts(a=KeyboardInterrupt())
    attempts = Attempts(a=ok(), b=ok(), c=ok())
    with pytest.raises(KeyboardInterrupt):
        run_inline(cluster, starts, attempts)
    assert attempts.started == {}
    assert totals(cluster) == {"connects": 0, "errors": 0, "discarded": 0, "pending": 0}
    node = next(n for n in cluster.stats_snapshot().nodes if n.name == "a")
    assert node.state != "down"  # an interrupt says nothing about the node


def test_a_connection_of_the_wrong_role_is_closed_and_the_next_node_tried() -> None:
    cluster = make_cluster(adapter=RoleAdapter(sqlite3))
    wrong = Conn("a", role="replica")
    starts = Starts(a=wrong)
    attempts = Attempts(a=ok(), b=ok(role="primary"), c=ok())
    conn = run_inline(cluster, starts, attempts, wanted="primary")
    assert conn.node == "b"
    assert wrong.closed.is_set()
    settle(cluster)
    assert totals(cluster)["discarded"] == 1
