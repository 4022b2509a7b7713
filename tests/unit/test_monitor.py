"""The monitor's scheduling and thread discipline, with stand-in clusters (no database: the
probe is a plain callable; what a probe does against a server is tested in tests/server)."""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from dataclasses import dataclass, field

import pytest

from clusterdb.config import ClusterOptions
from clusterdb.core.policies import Backoff
from clusterdb.core.schedule import ProbeSchedule
from clusterdb.runtime import process
from clusterdb.runtime.monitor import Monitor


@dataclass(eq=False)
class StandIn:
    """A cluster whose probe answers from a table and records when it was called."""

    name: str
    node_names: tuple[str, ...]
    options: ClusterOptions
    healthy: dict[str, bool] = field(default_factory=dict)
    calls: list[tuple[str, float]] = field(default_factory=list)
    block: threading.Event | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def probe(self, node: str) -> bool:
        with self.lock:
            self.calls.append((node, time.monotonic()))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.block is not None:
                self.block.wait(5)
            return self.healthy.get(node, True)
        finally:
            with self.lock:
                self.in_flight -= 1

    observed: dict[str, float] = field(default_factory=dict)

    def observed_at(self, node: str) -> float | None:
        return self.observed.get(node)

    def count(self, node: str) -> int:
        with self.lock:
            return sum(1 for n, _ in self.calls if n == node)


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def options(heartbeat: float, backoff: Backoff | None = None) -> ClusterOptions:
    return ClusterOptions(heartbeat=heartbeat, backoff=backoff or Backoff(initial=0.02, cap=0.1))


def test_schedule_success_waits_a_heartbeat_and_resets_failures() -> None:
    s = ProbeSchedule(due_at=0.0, failures=3).after_success(now=10.0, heartbeat=5.0)
    assert s == ProbeSchedule(due_at=15.0, failures=0)


def test_schedule_failures_back_off_up_to_the_cap() -> None:
    rng = random.Random(1)
    backoff = Backoff(initial=0.1, factor=2.0, cap=2.0, jitter=0.0)
    s = ProbeSchedule.first(0.0)
    gaps = []
    for _ in range(8):
        s = s.after_failure(now=0.0, backoff=backoff, rng=rng)
        gaps.append(s.due_at)
    assert gaps[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(gaps) == pytest.approx(2.0)
    assert s.failures == 8


def test_outside_failure_starts_the_backoff_once() -> None:
    rng = random.Random(1)
    backoff = Backoff(initial=0.1, factor=2.0, cap=2.0, jitter=0.0)
    s = ProbeSchedule(due_at=100.0).after_outside_failure(now=50.0, backoff=backoff, rng=rng)
    assert s == ProbeSchedule(due_at=50.1, failures=1)
    assert s.after_outside_failure(now=50.05, backoff=backoff, rng=rng) is s


def test_new_nodes_are_probed_at_once_then_once_per_heartbeat() -> None:
    monitor = Monitor(process.spawn)
    cluster = StandIn("c", ("a", "b"), options(heartbeat=0.2))
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("a") >= 1 and cluster.count("b") >= 1, 2.0)
        time.sleep(1.0)
        # At most one probe per node per heartbeat: over ~1.2 s at 0.2 s that is ≤ 7.
        for node in ("a", "b"):
            assert 3 <= cluster.count(node) <= 8, cluster.calls
    finally:
        monitor.stop()
    assert not monitor.running


def test_a_failing_node_is_probed_on_backoff_until_it_recovers() -> None:
    monitor = Monitor(process.spawn)
    cluster = StandIn("c", ("up", "down"), options(heartbeat=10.0), healthy={"down": False})
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("down") >= 4, 3.0)
        assert cluster.count("up") == 1  # the healthy node waits its 10 s heartbeat
        cluster.healthy["down"] = True
        seen = cluster.count("down")
        assert wait_for(lambda: cluster.count("down") == seen + 1, 2.0)
        time.sleep(0.5)
        assert cluster.count("down") <= seen + 2  # recovered: back on the heartbeat
    finally:
        monitor.stop()


def test_node_failed_from_outside_moves_a_healthy_node_onto_the_backoff() -> None:
    monitor = Monitor(process.spawn)
    cluster = StandIn("c", ("a",), options(heartbeat=30.0))
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("a") == 1, 2.0)
        cluster.healthy["a"] = False
        monitor.node_failed(cluster, "a")
        assert wait_for(lambda: cluster.count("a") >= 3, 2.0)
    finally:
        monitor.stop()


def test_at_most_one_probe_in_flight_per_node() -> None:
    monitor = Monitor(process.spawn)
    gate = threading.Event()
    cluster = StandIn("c", ("a",), options(heartbeat=0.01), block=gate)
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("a") == 1, 2.0)
        monitor.node_failed(cluster, "a")
        time.sleep(0.3)
        assert cluster.count("a") == 1
        assert cluster.max_in_flight == 1
    finally:
        gate.set()
        monitor.stop()


def _watch_and_forget(monitor: Monitor) -> weakref.ref[StandIn]:
    cluster = StandIn("c", ("a",), options(heartbeat=30.0))
    monitor.watch(cluster)
    assert wait_for(lambda: cluster.count("a") == 1, 2.0)
    assert monitor.watching(cluster)
    return weakref.ref(cluster)


def test_the_monitor_holds_clusters_weakly() -> None:
    monitor = Monitor(process.spawn)
    try:
        ref = _watch_and_forget(monitor)
        time.sleep(0.05)  # let the probe thread finish and drop its reference
        gc.collect()
        assert ref() is None
    finally:
        monitor.stop()


def test_idle_monitor_uses_next_to_no_cpu() -> None:
    monitor = Monitor(process.spawn)
    cluster = StandIn("c", tuple(f"n{i}" for i in range(20)), options(heartbeat=30.0))
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: len(cluster.calls) == 20, 3.0)
        time.sleep(0.1)
        before = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - before < 0.05
    finally:
        monitor.stop()


def test_the_process_monitor_is_shared_and_close_replaces_it() -> None:
    first = process.monitor()
    assert process.monitor() is first
    assert process.close(5)
    assert process.monitor() is not first


_CHILD = textwrap.dedent(
    """
    import os, sys, threading, time
    sys.path.insert(0, {tests!r})
    from test_monitor import StandIn, options, wait_for
    from clusterdb.runtime.process import monitor as get_monitor

    parent_cluster = StandIn("p", ("a",), options(heartbeat=0.05))
    get_monitor().watch(parent_cluster)
    assert wait_for(lambda: parent_cluster.count("a") >= 1)
    {body}
    """
)


def run_child(body: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    code = _CHILD.format(tests=os.path.dirname(__file__), body=textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )


def test_a_running_monitor_with_a_hung_probe_does_not_keep_the_process_alive() -> None:
    started = time.monotonic()
    result = run_child(
        """
        hung = StandIn("h", ("x",), options(heartbeat=0.05), block=threading.Event())
        get_monitor().watch(hung)
        assert wait_for(lambda: hung.count("x") == 1)
        print("exiting")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "exiting" in result.stdout
    assert time.monotonic() - started < 10  # the hung probe would block for 5 s if joined


def test_a_forked_child_gets_a_fresh_monitor_that_works() -> None:
    result = run_child(
        """
        parent_monitor = get_monitor()
        pid = os.fork()
        if pid == 0:
            child = StandIn("c", ("b",), options(heartbeat=0.05))
            m = get_monitor()
            ok = m is not parent_monitor
            m.watch(child)
            ok = ok and wait_for(lambda: child.count("b") >= 2)
            m.stop()
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert result.returncode == 0, result.stderr
    assert "child 0" in result.stdout
