"""The chaos invariants (clusterdb.testing.chaos.invariants) on hand-made timelines."""

from __future__ import annotations

import pytest

from clusterdb.testing.chaos.invariants import (
    Disruption,
    Op,
    Timeline,
    failed_while_up,
    grace_window,
    lost_writes,
    stats_mismatches,
    wrong_roles,
)

GRACE = 5.0


def timeline(*disruptions: Disruption) -> Timeline:
    t = Timeline.start({"a": "primary", "b": "replica"}, 0.0)
    t.disruptions.extend(disruptions)
    return t


def failed(wanted: str, start: float, end: float) -> Op:
    return Op("w", wanted, start, end, connect_error="AllNodesFailed")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("disruptions", "op", "violation"),
    [
        # No fault at all: any failure is a violation.
        ((), failed("any", 10, 11), True),
        ((), failed("primary", 10, 11), True),
        # The only fitting node is disrupted during the connect: allowed.
        ((Disruption("a", "kill", 9, 12),), failed("primary", 10, 11), False),
        # ... or recovered less than the grace window before it: allowed.
        ((Disruption("a", "kill", 1, 6),), failed("primary", 10, 11), False),
        # ... or recovered longer ago than the grace window: a violation.
        ((Disruption("a", "kill", 1, 4),), failed("primary", 10, 11), True),
        # The other node fits `any` and is up: a violation.
        ((Disruption("a", "kill", 9, 12),), failed("any", 10, 11), True),
        ((Disruption("a", "kill", 9, 12),), failed("prefer-replica", 10, 11), True),
        # Both down: allowed.
        (
            (Disruption("a", "hang", 9, 12), Disruption("b", "deaf", 0, 20)),
            failed("any", 10, 11),
            False,
        ),
        # A replica wanted, the replica disrupted, the primary up: allowed.
        ((Disruption("b", "refuse", 9, 12),), failed("replica", 10, 11), False),
        # A fault that began after the connect ended changes nothing.
        ((Disruption("a", "kill", 12, 14),), failed("primary", 10, 11), True),
        # A fault still open (never ended) keeps its node down.
        ((Disruption("a", "restart-error", 2),), failed("primary", 10, 11), False),
    ],
)
def test_failed_while_up(disruptions: tuple[Disruption, ...], op: Op, violation: bool) -> None:
    found = failed_while_up([op], timeline(*disruptions), GRACE)
    assert bool(found) is violation, found


def test_a_successful_connect_is_never_a_failure() -> None:
    assert failed_while_up([Op("w", "any", 1, 2, node="a")], timeline(), GRACE) == []


def test_the_role_that_fits_is_the_harness_role_at_the_time() -> None:
    t = timeline(Disruption("b", "promote", 20, 22, topology=True))
    t.roles["b"].append((22, "primary"))
    t.roles["a"].append((22, "replica"))
    # Long after the promotion, b is the primary: a failed primary connect is a violation.
    assert failed_while_up([failed("primary", 40, 41)], t, GRACE)
    # Before it, a was: a failed replica connect found b up.
    assert failed_while_up([failed("replica", 10, 11)], t, GRACE)


def checked(wanted: str, node: str, said: str, start: float = 10, at: float = 11) -> Op:
    return Op("w", wanted, start, at, node=node, server_role=said, checked_at=at)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("disruptions", "op", "violation"),
    [
        ((), checked("primary", "b", "replica"), True),
        ((), checked("replica", "a", "primary"), True),
        ((), checked("primary", "a", "primary"), False),
        ((), checked("any", "b", "replica"), False),
        ((), checked("prefer-replica", "a", "primary"), False),
        # Demoted or promoted between the connect and the answer: the legitimate race.
        (
            (Disruption("b", "switchover", 10.5, 13, topology=True),),
            checked("primary", "b", "replica"),
            False,
        ),
        (
            (Disruption("a", "promote", 8, 10.2, topology=True),),
            checked("replica", "a", "primary"),
            False,
        ),
        # A role change long before the connect explains nothing.
        (
            (Disruption("b", "promote", 1, 3, topology=True),),
            checked("primary", "b", "replica"),
            True,
        ),
        # A fault that is not a role change explains nothing either.
        ((Disruption("b", "kill", 10, 12),), checked("primary", "b", "replica"), True),
    ],
)
def test_wrong_roles(disruptions: tuple[Disruption, ...], op: Op, violation: bool) -> None:
    assert bool(wrong_roles([op], timeline(*disruptions))) is violation


def test_lost_writes_are_the_acknowledged_ids_missing() -> None:
    assert lost_writes(["x", "y", "z"], ["y", "q"]) == ["x", "z"]
    assert lost_writes(["x"], ["x"]) == []


def test_stats_must_match_the_workers() -> None:
    ops = [Op("w", "any", 0, 1, node="a"), failed("any", 1, 2), Op("w", "any", 2, 3, node="b")]
    assert stats_mismatches(ops, connects=2, failures=1) == []
    assert len(stats_mismatches(ops, connects=3, failures=1)) == 1
    assert len(stats_mismatches(ops, connects=2, failures=0)) == 1


def test_grace_window_formula() -> None:
    # A probe in flight (connect_timeout) + the next one's delay (the backoff cap with jitter
    # here, longer than the heartbeat) + one successful connect (slack).
    assert grace_window(1.0, 4.0, 2.0, 0.15, slack=2.0) == pytest.approx(4.0 + 2.3 + 2.0)
    assert grace_window(5.0, 4.0, 2.0, 0.15, slack=2.0) == pytest.approx(11.0)
