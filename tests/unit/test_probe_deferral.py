"""Fleet scale: a node that the process's own connects observed within the heartbeat is not
probed (core.schedule.ProbeSchedule.deferred, NodeRecord.observation, the monitor)."""

from __future__ import annotations

import time

import pytest
from test_monitor import StandIn, options, wait_for

from clusterdb.core.node_state import NodeRecord
from clusterdb.core.schedule import ProbeSchedule
from clusterdb.runtime import process
from clusterdb.runtime.monitor import Monitor

HB = 5.0


@pytest.mark.parametrize(
    ("schedule", "now", "observed_at", "expected"),
    [
        # Never observed: probe.
        (ProbeSchedule(due_at=10.0), 10.0, None, None),
        # Observed 1 s ago: skipped, due a heartbeat after the observation.
        (ProbeSchedule(due_at=10.0), 10.0, 9.0, ProbeSchedule(due_at=14.0)),
        # Observed just under a heartbeat ago: skipped until then.
        (ProbeSchedule(due_at=10.0), 10.0, 5.5, ProbeSchedule(due_at=10.5)),
        # Observed a heartbeat ago or more: probe.
        (ProbeSchedule(due_at=10.0), 10.0, 5.0, None),
        (ProbeSchedule(due_at=10.0), 10.0, 1.0, None),
        # On the backoff (failures): always probe, whatever the connects saw.
        (ProbeSchedule(due_at=10.0, failures=1), 10.0, 9.9, None),
        # The first probe and a requested check always run.
        (ProbeSchedule.first(10.0), 10.0, 9.9, None),
        (ProbeSchedule(due_at=20.0).no_later_than(10.0), 10.0, 9.9, None),
    ],
)
def test_deferred(
    schedule: ProbeSchedule, now: float, observed_at: float | None, expected: ProbeSchedule | None
) -> None:
    assert schedule.deferred(now, HB, observed_at) == expected


def test_a_deferred_schedule_is_no_longer_required_and_a_success_clears_required() -> None:
    assert not ProbeSchedule.first(0.0).after_success(1.0, HB).required
    assert ProbeSchedule(due_at=5.0).no_later_than(1.0).required


@pytest.mark.parametrize(
    ("role", "galera", "max_lag", "counts"),
    [
        ("primary", None, None, True),
        ("replica", None, None, True),
        ("primary", None, 2.0, True),
        ("replica", None, 2.0, False),  # the lag is only read by probes
        ("primary", "synced", None, False),  # so is a Galera node's state
    ],
)
def test_observation_counts_only_when_a_connect_sees_what_a_probe_reads(
    role: str, galera: str | None, max_lag: float | None, counts: bool
) -> None:
    node = NodeRecord("n")
    node.on_connected(0.001, role, 7.0, 0.0, discarded=False)  # type: ignore[arg-type]
    node.galera = galera  # type: ignore[assignment]
    assert node.observation(max_lag) == (7.0 if counts else None)


def test_a_connect_that_did_not_read_the_role_is_no_observation() -> None:
    node = NodeRecord("n")
    node.on_connected(0.001, None, 7.0, 0.0, discarded=False)
    assert node.observation(None) is None


def test_the_monitor_skips_probes_of_observed_nodes() -> None:
    monitor = Monitor(process.spawn)
    cluster = StandIn("c", ("seen", "unseen"), options(heartbeat=0.2))
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("seen") == 1 and cluster.count("unseen") == 1)
        began = time.monotonic()
        while time.monotonic() - began < 1.2:  # a busy process: connects keep seeing "seen"
            cluster.observed["seen"] = time.monotonic()
            time.sleep(0.02)
        assert cluster.count("seen") == 1  # only the first, required probe
        assert cluster.count("unseen") >= 3  # still once per heartbeat
    finally:
        monitor.stop()
