"""The fork gate (clusterdb.drivers.fork_gate): a fork waits for the libpq steps under way
and none starts until it is done."""

from __future__ import annotations

import threading
import time

from clusterdb.drivers.fork_gate import ForkGate


def test_close_waits_for_the_step_under_way_and_holds_new_ones_until_reopen() -> None:
    gate = ForkGate()
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def step(name: str, hold: threading.Event | None = None) -> None:
        with gate:
            order.append(f"{name} in")
            if hold is not None:
                inside.set()
                hold.wait(10)
            order.append(f"{name} out")

    first = threading.Thread(target=step, args=("first", release))
    first.start()
    assert inside.wait(10)

    def close() -> None:
        gate.close(10)
        order.append("closed")

    closer = threading.Thread(target=close)
    closer.start()
    time.sleep(0.1)
    assert "closed" not in order  # the step under way is waited for
    release.set()
    closer.join(10)
    assert order == ["first in", "first out", "closed"] and gate.busy == 0
    second = threading.Thread(target=step, args=("second",))
    second.start()
    time.sleep(0.1)
    assert order[-1] == "closed"  # no step starts while the gate is closed (the fork)
    gate.reopen()
    second.join(10)
    assert order[-2:] == ["second in", "second out"]


def test_close_gives_up_after_its_wait_and_reset_starts_afresh() -> None:
    gate = ForkGate()
    gate.__enter__()  # a step that never ends (a thread the child does not have)
    started = time.monotonic()
    gate.close(0.05)
    assert 0.04 <= time.monotonic() - started < 5.0 and gate.busy == 1
    gate.reset()
    assert gate.busy == 0
    with gate:  # open, as in a fresh child
        assert gate.busy == 1
