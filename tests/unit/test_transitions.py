"""Node transition tables (tests/unit/scenarios/transitions/*.json), the SDAM analogue.

PyMongo's discovery-and-monitoring tests are the model: a record, a sequence of outcomes, and
after each the expected events, whether kept rankings go, and the record's fields; no server,
no clock. Each scenario is a JSON object:

* ``record``: NodeRecord fields to start from (``name`` "n", ``address`` "h:1");
  ``trial_serves``: optional, 1 by default;
* ``steps``: ``{"on": <kind>, "at": <seconds>, ..., "expect": {...}}``, where ``at`` is the
  monotonic ``now`` and, shifted by WALL0, the wall clock. Kinds: ``connected`` (latency,
  role, discarded), ``returned`` (latency), ``failed`` / ``lost`` (line), ``read_only``,
  ``hedge`` (elapsed), ``probe`` (ProbeOutcome fields, line), ``drained`` (drained), and
  ``ranked``: a ranking kept now (the record's band set from its estimate, floor 0.25 ms);
* ``expect``: ``events`` (``[type, fields after the node (and address)]``), ``rerank``,
  ``latency`` / ``latency_below`` / ``rtt`` (seconds, at ``at``) and any record field (wall
  moments as ``at`` values).
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scenario_tables import SCENARIOS, load

from clusterdb.core.description import NodeDescription
from clusterdb.core.events import (
    DrainChanged,
    Event,
    ReplicationChanged,
    RoleChanged,
    StateChanged,
)
from clusterdb.core.galera import WsrepStatus
from clusterdb.core.node_state import NodeRecord, ProbeOutcome, Transition
from clusterdb.core.ranking_cache import RankingCache

TABLES = SCENARIOS / "transitions"
WALL0 = 1_700_000_000.0
WALL_FIELDS = {"last_error_at", "last_success_at", "last_state_change_at", "down_since_epoch"}
CACHE = RankingCache(floor=0.00025)


def _brief(event: Event) -> list[Any]:
    fields = list(event[1:])
    if isinstance(event, StateChanged):
        assert event.address == "h:1"
        fields.remove("h:1")
    return [type(event).__name__, *fields]


def _step(record: NodeRecord, step: dict[str, Any]) -> Transition | None:
    kind = step["on"]
    now = step.get("at", 0.0)
    wall = WALL0 + now
    if kind == "connected":
        return record.on_connected(
            step["latency"], step["role"], now, wall, step.get("discarded", False)
        )
    if kind == "returned":
        return (), record.on_returned(step["latency"], now, wall)
    if kind == "failed":
        return record.on_failed(step["line"], now, wall)
    if kind == "lost":
        return record.on_connection_lost(step["line"], now, wall)
    if kind == "read_only":
        return record.on_read_only_error()
    if kind == "hedge":
        return record.on_hedge(step["elapsed"], now)
    if kind == "probe":
        fields = {k: step[k] for k in ProbeOutcome._fields if k in step}
        if "wsrep" in fields:
            fields["wsrep"] = WsrepStatus(**fields["wsrep"])
        return record.on_probe(ProbeOutcome(**fields), now, wall, step.get("line"))
    if kind == "drained":
        return record.on_drained(step["drained"])
    assert kind == "ranked", kind
    record.keep = CACHE.band(record.latency.value_at(now))
    return None


def _check(record: NodeRecord, step: dict[str, Any], result: Transition | None) -> None:
    now = step.get("at", 0.0)
    for key, want in step.get("expect", {}).items():
        what = (step["on"], key)
        assert result is not None, what
        if key == "events":
            assert [_brief(e) for e in result[0]] == want, what
        elif key == "rerank":
            assert result[1] is want, what
        elif key == "latency":
            assert record.latency.value_at(now) == pytest.approx(want, rel=0.01), what
        elif key == "latency_below":
            value = record.latency.value_at(now)
            assert value is not None and value < want, what
        elif key == "rtt":
            assert record.rtt.value == pytest.approx(want), what
        elif key in WALL_FIELDS:
            got = getattr(record, key)
            assert (None if got is None else got - WALL0) == pytest.approx(want), what
        else:
            assert getattr(record, key) == want, what


@pytest.mark.parametrize("case", load(TABLES))
def test_scenario(case: dict[str, Any]) -> None:
    record = NodeRecord("n", "h:1", case.get("trial_serves", 1), **case.get("record", {}))
    for step in case["steps"]:
        result = _step(record, step)
        _check(record, step, result)
        if result is not None and result[0]:
            assert result[1], "an event always ends kept rankings"


KINDS = {
    "connected": "on_connected",
    "returned": "on_returned",
    "failed": "on_failed",
    "lost": "on_connection_lost",
    "read_only": "on_read_only_error",
    "hedge": "on_hedge",
    "probe": "on_probe",
    "drained": "on_drained",
}


def test_every_transition_has_a_scenario() -> None:
    kinds = {step["on"] for case in load(TABLES) for step in case.values[0]["steps"]}
    assert set(KINDS.values()) == {name for name in dir(NodeRecord) if name.startswith("on_")}
    assert kinds == {*KINDS, "ranked"}


outcome = st.one_of(
    st.tuples(st.just("connected"), st.floats(0.0001, 0.5), st.sampled_from([None, "primary"])),
    st.tuples(st.just("connected"), st.floats(0.0001, 0.5), st.just("replica")),
    st.tuples(st.just("returned"), st.floats(0.0001, 0.5)),
    st.tuples(st.just("failed"), st.just("refused")),
    st.tuples(st.just("lost"), st.just("reset")),
    st.tuples(st.just("read_only")),
    st.tuples(st.just("hedge"), st.floats(0.0, 1.0)),
    st.tuples(st.just("probe_ok"), st.sampled_from([None, "primary", "replica"]), st.booleans()),
    st.tuples(st.just("probe_failed")),
    st.tuples(st.just("drained"), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(outcome, max_size=40))
def test_the_events_tell_the_whole_story(ops: list[tuple[Any, ...]]) -> None:
    """Replaying the events from the start gives the record's state, role, drain and
    replication; down_since is set exactly while the node is down."""
    record = NodeRecord("n", "h:1")
    state, role, drained, stopped, changes = "unknown", "unknown", False, False, 0
    for at, (kind, *args) in enumerate(ops):
        step: dict[str, Any] = {"on": kind, "at": float(at)}
        if kind == "connected":
            step.update(latency=args[0], role=args[1])
        elif kind == "returned":
            step.update(latency=args[0])
        elif kind in ("failed", "lost"):
            step.update(line=args[0])
        elif kind == "hedge":
            step.update(elapsed=args[0])
        elif kind == "probe_ok":
            step.update(on="probe", ok=True, role=args[0], stopped=args[1], lag=None)
        elif kind == "probe_failed":
            step.update(on="probe", ok=False)
        elif kind == "drained":
            step.update(drained=args[0])
        result = _step(record, step)
        assert result is not None
        events, rerank = result
        assert rerank or not events
        for e in events:
            if isinstance(e, StateChanged):
                assert e.old == state
                state, changes = e.new, changes + 1
            elif isinstance(e, RoleChanged):
                assert e.old == role
                role = e.new
            elif isinstance(e, DrainChanged):
                drained = e.drained
            else:
                assert isinstance(e, ReplicationChanged)
                stopped = e.stopped
        assert (record.state, record.role, record.drained) == (state, role, drained)
        assert record.replication_stopped == stopped and record.state_changes == changes
        assert (record.down_since is not None) == (state == "down")
        assert (record.down_since_epoch is not None) == (state == "down")
        value = record.latency.value_at(float(at))
        assert value is None or math.isfinite(value)


def test_a_description_and_a_snapshot_carry_every_field_of_the_record() -> None:
    values = {
        "state": "down",
        "role": "replica",
        "served": 2,
        "lag": 1.5,
        "replication_stopped": True,
        "galera": "donor",
        "drained": True,
        "pending": 3,
        "down_since": 7.0,
    }
    record = NodeRecord("n", "h:1", **values)  # type: ignore[arg-type]
    record.on_hedge(0.25, 7.0)
    described = record.describe(7.0)
    for f in fields(NodeDescription):
        if f.name == "latency":
            assert described.latency == pytest.approx(0.25)
        else:
            assert getattr(described, f.name) == getattr(record, f.name) != f.default, f.name
    stats = record.snapshot()
    assert (stats.replication_stopped, stats.drained, stats.lag_s) == (True, True, 1.5)
    assert stats.galera == "donor"
    assert stats.pending == 3 and stats.latency_ms == pytest.approx(250.0)
