"""The chaos schedule generator (clusterdb.testing.chaos.schedule): pure, replayable, and
every rule it promises holds for any seed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.testing.chaos.schedule import FAULT_KINDS, TOPOLOGY, Fault, make_schedule


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert make_schedule(42, 3, 60.0) == make_schedule(42, 3, 60.0)


def test_different_seeds_give_different_schedules() -> None:
    schedules = {make_schedule(seed, 3, 60.0) for seed in range(10)}
    assert len(schedules) == 10


def test_a_long_run_draws_every_kind() -> None:
    kinds = {f.kind for f in make_schedule(7, 3, 600.0)}
    assert kinds == set(FAULT_KINDS)


def test_kinds_limit_what_is_drawn() -> None:
    faults = make_schedule(3, 3, 120.0, kinds=("hang", "latency"))
    assert faults and {f.kind for f in faults} <= {"hang", "latency"}


def _primaries(faults: tuple[Fault, ...]) -> list[int]:
    """The primary before each fault, replaying the topology changes."""
    primary, out = 0, []
    for f in faults:
        out.append(primary)
        if f.kind in TOPOLOGY:
            primary = f.node
    return out


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    nodes=st.integers(1, 4),
    duration=st.floats(5.0, 300.0),
    concurrency=st.integers(1, 3),
)
def test_every_rule_holds(seed: int, nodes: int, duration: float, concurrency: int) -> None:
    faults = make_schedule(seed, nodes, duration, concurrency=concurrency)
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    for f, primary in zip(faults, _primaries(faults), strict=True):
        assert 0 <= f.node < nodes
        assert f.duration >= 0 and f.ends <= duration
        active = [g for g in faults if g is not f and g.at <= f.at < g.ends]
        assert len(active) < concurrency  # at most `concurrency` at once
        assert all(g.node != f.node for g in active)  # one fault per node at a time
        if f.kind in ("repl_delay", *TOPOLOGY):
            assert f.node != primary  # a replica
        if f.kind in TOPOLOGY:
            assert not active  # alone...
            later = [g for g in faults if f.at < g.at < f.ends]
            assert not later  # ...until it ended (the runner plays ends before begins)
        if f.kind in ("latency", "repl_delay"):
            assert f.amount > 0
