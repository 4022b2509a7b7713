"""The monitor's discovery polls (issue 18): one per heartbeat per discovering cluster, moved
forward by request_check, never two at once, none for a cluster without discovery."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from test_monitor import StandIn, options, wait_for

from clusterdb.runtime import process
from clusterdb.runtime.monitor import Monitor


@dataclass(eq=False)
class Discovering(StandIn):
    discovery: object = "a source"
    polls: list[float] = field(default_factory=list)
    polling: int = 0
    overlap: bool = False
    slow: threading.Event | None = None

    def discover(self) -> bool:
        with self.lock:
            self.polling += 1
            self.overlap |= self.polling > 1
            self.polls.append(time.monotonic())
        if self.slow is not None:
            self.slow.wait(5)
        with self.lock:
            self.polling -= 1
        return True


def test_polls_each_heartbeat_and_at_once_on_request_check() -> None:
    monitor = Monitor(process.spawn)
    cluster = Discovering("d", ("a",), options(heartbeat=0.3))
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: len(cluster.polls) >= 3, timeout=5)
        gaps = [b - a for a, b in zip(cluster.polls, cluster.polls[1:], strict=False)]
        assert all(g > 0.2 for g in gaps), gaps  # a heartbeat apart, not a busy loop
        before = len(cluster.polls)
        asked = time.monotonic()
        monitor.request_check(cluster)
        assert wait_for(lambda: len(cluster.polls) > before, timeout=5)
        assert cluster.polls[before] - asked < 0.25  # not a whole heartbeat later
    finally:
        monitor.stop()


def test_one_poll_at_a_time_and_a_check_asked_meanwhile_is_kept() -> None:
    monitor = Monitor(process.spawn)
    cluster = Discovering("d", ("a",), options(heartbeat=30.0), slow=threading.Event())
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: len(cluster.polls) == 1)
        monitor.request_check(cluster)  # while the first poll hangs
        time.sleep(0.2)
        assert len(cluster.polls) == 1
        assert cluster.slow is not None
        cluster.slow.set()
        assert wait_for(lambda: len(cluster.polls) == 2, timeout=3)  # served after, not at +30 s
        assert not cluster.overlap
    finally:
        monitor.stop()


def test_no_poll_without_discovery() -> None:
    monitor = Monitor(process.spawn)
    cluster = Discovering("d", ("a",), options(heartbeat=0.1), discovery=None)
    try:
        monitor.watch(cluster)
        assert wait_for(lambda: cluster.count("a") >= 2)
        monitor.request_check(cluster)
        time.sleep(0.2)
        assert cluster.polls == []
    finally:
        monitor.stop()
