"""Cluster.describe() reuses a node's last description while nothing about the node changed,
and Cluster.begin() a ranking while nothing it rests on changed: whatever sequence of
outcomes, probes, hedges, drains and plans, what they use is what a fresh description would
say (the decayed latency estimate within 0.5 %, a ranking's within its drift: 10 %, or
0.25 ms for fast nodes)."""

from __future__ import annotations

import math
import sqlite3
import time
from collections import Counter
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.config import cluster_from_kwargs
from clusterdb.core.galera import WsrepStatus
from clusterdb.core.policies import SelectionPolicy
from clusterdb.core.selection import rank
from clusterdb.drivers.generic import GenericAdapter
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.probe import ProbeOutcome

NODES = ("a", "b", "c")

node = st.sampled_from(NODES)
role = st.sampled_from([None, "primary", "replica"])
lag = st.one_of(st.none(), st.floats(0, 100))
latency = st.floats(0.0001, 0.5)
wsrep = st.one_of(
    st.none(),
    st.builds(
        WsrepStatus,
        st.sampled_from([0, 1, 2, 3, 4]),
        st.booleans(),
        st.sampled_from(["Primary", "non-Primary"]),
        st.booleans(),
    ),
)

operation = st.one_of(
    st.tuples(st.just("begin"), st.sampled_from(["any", "primary", "replica", "prefer-replica"])),
    st.tuples(st.just("success"), node, latency, role),
    st.tuples(st.just("returned"), node, latency, role),
    st.tuples(st.just("fold")),
    st.tuples(st.just("failure"), node),
    st.tuples(st.just("hedge"), node, latency),
    st.tuples(st.just("probe_ok"), node, latency, role, lag, st.booleans(), wsrep),
    st.tuples(st.just("probe_failed"), node),
    st.tuples(st.just("drain"), node, st.booleans()),
    st.tuples(st.just("started"), node),
)


def make_cluster() -> Cluster:
    specs = [{"name": n, "dsn": ":memory:"} for n in NODES]
    config = cluster_from_kwargs("describe", sqlite3, specs, {"monitor": False})
    return Cluster(config, GenericAdapter(sqlite3))


def apply(cluster: Cluster, op: tuple[object, ...]) -> None:
    kind, *args = op
    if kind == "begin":
        cluster.begin(args[0])  # type: ignore[arg-type]
    elif kind == "success":
        n, seconds, r = args
        cluster.attempt_started(n)  # type: ignore[arg-type]
        cluster.record_success(n, seconds, r, discarded=False)  # type: ignore[arg-type]
    elif kind == "returned":
        n, seconds, r = args
        cluster.attempt_started(n)  # type: ignore[arg-type]
        cluster.record_returned(n, seconds, r)  # type: ignore[arg-type]
    elif kind == "fold":
        cluster.fold()
    elif kind == "failure":
        cluster.attempt_started(args[0])  # type: ignore[arg-type]
        cluster.record_failure(args[0], OSError("refused"))  # type: ignore[arg-type]
    elif kind == "hedge":
        cluster.record_hedge(args[0], args[1])  # type: ignore[arg-type]
    elif kind == "probe_ok":
        n, seconds, r, lag_s, stopped, status = args
        cluster.record_probe(
            n,  # type: ignore[arg-type]
            ProbeOutcome(
                True,
                rtt=seconds,  # type: ignore[arg-type]
                role=r,  # type: ignore[arg-type]
                lag=lag_s,  # type: ignore[arg-type]
                latency=seconds,  # type: ignore[arg-type]
                stopped=stopped,  # type: ignore[arg-type]
                wsrep=status,  # type: ignore[arg-type]
            ),
        )
    elif kind == "probe_failed":
        outcome = ProbeOutcome(False, error=OSError("timed out"))
        cluster.record_probe(args[0], outcome)  # type: ignore[arg-type]
    elif kind == "drain":
        (cluster.drain if args[1] else cluster.undrain)(args[0])  # type: ignore[arg-type]
    elif kind == "started":
        cluster.attempt_started(args[0])  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=30))
def test_describe_always_matches_a_fresh_description(ops: list[tuple[object, ...]]) -> None:
    cluster = make_cluster()
    for op in ops:
        apply(cluster, op)
        described = cluster.describe()
        now = time.monotonic()
        for got, n in zip(described.nodes, cluster._nodes.values(), strict=True):
            fresh = n._describe(now)
            assert (got.name, got.state, got.role, got.lag, got.replication_stopped) == (
                fresh.name,
                fresh.state,
                fresh.role,
                fresh.lag,
                fresh.replication_stopped,
            )
            assert (got.drained, got.pending, got.down_since, got.served, got.galera) == (
                fresh.drained,
                fresh.pending,
                fresh.down_since,
                fresh.served,
                fresh.galera,
            )
            if fresh.latency is None:
                assert got.latency is None
            else:
                assert got.latency is not None
                assert math.isclose(got.latency, fresh.latency, rel_tol=0.005)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=30))
def test_stats_count_every_outcome_once_queued_or_not(ops: list[tuple[object, ...]]) -> None:
    cluster = make_cluster()
    connects = dict.fromkeys(NODES, 0)
    pending = dict.fromkeys(NODES, 0)
    returned = 0
    for op in ops:
        kind, *args = op
        if kind == "begin":  # nothing attempted: undo what begin() counted pending
            chosen, _ = cluster.begin(args[0])  # type: ignore[arg-type]
            for name in chosen.nodes if chosen.race else chosen.nodes[:1]:
                cluster.attempt_abandoned(name)
        else:
            apply(cluster, op)
        if kind in ("success", "returned"):
            connects[args[0]] += 1  # type: ignore[index]
            returned += kind == "returned"
        elif kind == "started":
            pending[args[0]] += 1  # type: ignore[index]
        snap = cluster.stats_snapshot()
        assert {n.name: n.connects for n in snap.nodes} == connects
        assert {n.name: n.pending for n in snap.nodes} == pending
        assert snap.connects == returned
        assert cluster._in_flight == sum(pending.values())


def test_an_unchanged_node_is_described_by_the_same_object() -> None:
    cluster = make_cluster()
    cluster.attempt_started("a")
    cluster.record_success("a", 0.002, "primary", discarded=False)
    first = cluster.describe()
    second = cluster.describe()
    assert all(x is y for x, y in zip(first.nodes, second.nodes, strict=True))
    cluster.attempt_started("b")
    third = cluster.describe()
    assert third.nodes[0] is first.nodes[0]
    assert third.nodes[1] is not first.nodes[1] and third.nodes[1].pending == 1


WANTED = ("any", "primary", "replica", "prefer-replica")


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=30))
def test_a_kept_ranking_rests_on_what_is_true_now(ops: list[tuple[object, ...]]) -> None:
    cluster = make_cluster()
    policy = SelectionPolicy()
    for op in ops:
        apply(cluster, op)
        for wanted in WANTED:
            chosen, used = cluster.begin(wanted)  # type: ignore[arg-type]
            first = chosen.nodes if chosen.race else chosen.nodes[:1]
            for name in first:  # undo begin's pending count: nothing is attempted here
                cluster.attempt_abandoned(name)
            # What is recorded, without what is still queued (a kept ranking does not wait
            # for it; a new one is made after it is done): a queued connect is still pending
            # in its node's count.
            now = time.monotonic()
            queued = Counter(n.name for n, *_ in cluster._outbox)
            fresh = [
                replace(n._describe(now), pending=n.pending - queued[n.name])
                for n in cluster._nodes.values()
            ]
            for got, now_is in zip(used.nodes, fresh, strict=True):
                assert (got.state, got.role, got.lag, got.replication_stopped) == (
                    now_is.state,
                    now_is.role,
                    now_is.lag,
                    now_is.replication_stopped,
                )
                assert (got.drained, got.pending, got.galera) == (
                    now_is.drained,
                    now_is.pending,
                    now_is.galera,
                )
                assert policy.on_trial(got) == policy.on_trial(now_is)
                if now_is.latency is None:
                    assert got.latency is None
                else:
                    assert got.latency is not None
                    drift = abs(got.latency - now_is.latency)
                    assert drift <= max(0.11 * got.latency, 0.000251)
            # And the plan is one a fresh ranking of that description could have drawn.
            again = rank(used, wanted)  # type: ignore[arg-type]
            assert set(chosen.nodes) == {n for names, _ in again.groups for n in names}


def measured_cluster(seconds: float) -> Cluster:
    """A cluster whose every node connected three times in ``seconds``."""
    cluster = make_cluster()
    for name in NODES:
        for _ in range(3):
            cluster.attempt_started(name)
            cluster.record_success(name, seconds, "primary", discarded=False)
    return cluster


def ranking(cluster: Cluster) -> object:
    """The ranking begin() drew its plan from (nothing is attempted)."""
    chosen, _ = cluster.begin("any")
    cluster.attempt_abandoned(chosen.nodes[0])
    return cluster._rankings.kept["any"][2]


def test_begin_keeps_its_ranking_until_something_changes() -> None:
    cluster = measured_cluster(0.002)
    kept = ranking(cluster)
    assert ranking(cluster) is kept
    cluster.attempt_started("a")
    cluster.record_success("a", 0.0021, None, discarded=False)  # within the drift: kept
    assert ranking(cluster) is kept
    cluster.attempt_started("b")  # an attempt pending weighs in: ranked afresh, not kept
    chosen, desc = cluster.begin("any")
    cluster.attempt_abandoned(chosen.nodes[0])
    assert desc.node("b").pending == 1
    assert cluster._rankings.kept["any"][2] is kept
    cluster.attempt_abandoned("b")
    assert ranking(cluster) is kept
    cluster.drain("c")
    assert ranking(cluster) is not kept


def test_a_fast_node_keeps_its_ranking_through_sub_quarter_millisecond_noise() -> None:
    # Local nodes' connect times wander by far more than 10 % from one connect to the next;
    # a move under a quarter of the window's 1 ms keeps the ranking.
    cluster = measured_cluster(0.00012)
    kept = ranking(cluster)
    cluster.attempt_started("a")
    cluster.record_success("a", 0.0003, None, discarded=False)  # a sample 2.5x, +0.18 ms: kept
    assert ranking(cluster) is kept
    cluster.attempt_started("a")
    cluster.record_success("a", 0.002, None, discarded=False)  # +1.9 ms: ranked afresh
    assert ranking(cluster) is not kept


def test_a_probe_can_lower_a_latency_estimate_but_never_raise_it() -> None:
    cluster = make_cluster()

    def latency(node: str) -> float:
        value = cluster.describe().node(node).latency
        assert value is not None
        return value

    cluster.record_probe("a", ProbeOutcome(True, latency=0.004))  # nothing known: the probe sets it
    assert math.isclose(latency("a"), 0.004, rel_tol=0.01)
    # A worker thread's time: an upper bound.
    cluster.record_probe("a", ProbeOutcome(True, latency=0.040))
    assert math.isclose(latency("a"), 0.004, rel_tol=0.01)
    cluster.record_probe("a", ProbeOutcome(True, latency=0.001))
    assert latency("a") < 0.003
    cluster.attempt_started("a")
    cluster.record_success("a", 0.040, None, discarded=False)  # a connect's time counts fully
    assert latency("a") > 0.005
