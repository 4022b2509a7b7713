"""Applies a chaos schedule to a harness cluster and records what it did, when.

The runner plays every fault's begin and end action in time order in one thread (so two
actions never race on the harness), and records each disruption from the moment its begin
action was called until its end action *returned* (a restarted server accepts connections, a
proxy passes again): the timeline the invariants judge is the harness's own, not the plan's.
A harness action that raises leaves its node disrupted until the end of the run and is
reported (:attr:`FaultRunner.errors`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clusterdb.testing.chaos.invariants import Disruption, Timeline
from clusterdb.testing.chaos.schedule import TOPOLOGY, Fault
from clusterdb.testing.cluster import Cluster, TestNode

__all__ = ["Applied", "FaultRunner"]

_DISRUPTIVE = frozenset({"kill", "hang", "restart", "deaf", "refuse"})
_CATCH_UP = 30.0


@dataclass
class Applied:
    """One fault as it happened: begin called at ``start``, end returned at ``end``."""

    fault: Fault
    node: str
    start: float
    end: float = math.inf
    error: str | None = None


@dataclass
class FaultRunner:
    """Plays ``schedule`` on ``harness`` from ``t0`` (a ``clock()`` value)."""

    harness: Cluster
    schedule: Sequence[Fault]
    clock: Callable[[], float]
    t0: float
    log: Callable[[str], None] = print
    timeline: Timeline = field(init=False)
    applied: list[Applied] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _open: dict[int, list[Disruption]] = field(default_factory=dict)
    _old_primary: dict[int, TestNode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timeline = Timeline.start({n.name: n.role for n in self.harness.nodes}, self.t0)

    def run(self, stop: threading.Event) -> None:
        """Play every action at its time; returns early (ending active faults) on ``stop``."""
        actions = sorted(
            [(f.at, 1, i, f) for i, f in enumerate(self.schedule)]
            + [(f.ends, 0, i, f) for i, f in enumerate(self.schedule)],
            key=lambda a: (a[0], a[1], a[2]),
        )
        begun: set[int] = set()
        for at, is_begin, index, fault in actions:
            if is_begin:
                if stop.wait(max(0.0, self.t0 + at - self.clock())):
                    break
                begun.add(index)
                self._act(index, fault, begin=True)
            elif index in begun:
                stop.wait(max(0.0, self.t0 + at - self.clock()))
                begun.discard(index)
                self._act(index, fault, begin=False)
        for index in sorted(begun):  # stopped early: end what is still active
            self._act(index, self.schedule[index], begin=False)

    def _act(self, index: int, fault: Fault, begin: bool) -> None:
        node = self.harness.nodes[fault.node]
        now = self.clock()
        if begin:
            self.applied.append(Applied(fault, node.name, now))
            self.log(f"chaos: {fault.describe([n.name for n in self.harness.nodes])}")
        try:
            (self._begin if begin else self._end)(index, fault, node)
        except Exception as exc:  # the harness failed: its node stays disrupted
            message = f"{fault.kind} {'begin' if begin else 'end'} on {node.name}: {exc!r}"
            self.errors.append(message)
            self.log(f"chaos: harness error: {message}")
            self.timeline.disruptions.extend(
                Disruption(d.node, d.kind, d.start, topology=d.topology)
                for d in self._open.pop(index, [])
            )
            self.timeline.disruptions.append(Disruption(node.name, f"{fault.kind}-error", now))
            return
        if not begin:
            for applied in self.applied:
                if applied.fault is fault:
                    applied.end = self.clock()

    def _disrupt(self, index: int, node: TestNode, kind: str, topology: bool = False) -> None:
        d = Disruption(node.name, kind, self.clock(), topology=topology)
        self._open.setdefault(index, []).append(d)

    def _close(self, index: int) -> None:
        end = self.clock()
        for d in self._open.pop(index, []):
            self.timeline.disruptions.append(
                Disruption(d.node, d.kind, d.start, end, topology=d.topology)
            )

    def _set_roles(self) -> None:
        now = self.clock()
        for node in self.harness.nodes:
            history = self.timeline.roles[node.name]
            if history[-1][1] != node.role:
                history.append((now, node.role))

    def _begin(self, index: int, fault: Fault, node: TestNode) -> None:
        kind = fault.kind
        if kind in _DISRUPTIVE:
            self._disrupt(index, node, kind)
        if kind == "kill":
            node.kill()
        elif kind == "hang":
            node.hang()
        elif kind == "restart":
            node.restart()
            self._close(index)
        elif kind in ("deaf", "refuse"):
            node.proxy.set_mode(kind)
        elif kind == "latency":
            node.proxy.set_delay(fault.amount)
        elif kind == "repl_delay":
            self.harness.set_replication_delay(node, fault.amount)
        elif kind in TOPOLOGY:
            self._topology(index, fault, node)

    def _topology(self, index: int, fault: Fault, node: TestNode) -> None:
        # Every replica caught up first: a promote must not be where a write gets lost.
        self.harness.wait_caught_up(timeout=_CATCH_UP)
        old = self.harness.primary
        self._disrupt(index, old, fault.kind, topology=True)
        self._disrupt(index, node, fault.kind, topology=True)
        if fault.kind == "promote":
            self.harness.promote(node)  # the old primary is fenced: stopped
            self._old_primary[index] = old
            # The new primary's doubt ends now; the old one stays down until the end action.
            mine = self._open[index]
            self._open[index] = [d for d in mine if d.node == old.name]
            self.timeline.disruptions.extend(
                Disruption(d.node, d.kind, d.start, self.clock(), topology=True)
                for d in mine
                if d.node != old.name
            )
        else:
            switchover = getattr(self.harness, "switchover")  # noqa: B009 - per server kind
            switchover(node)
            self._close(index)
        self._set_roles()

    def _end(self, index: int, fault: Fault, node: TestNode) -> None:
        kind = fault.kind
        if kind == "kill":
            node.start()
        elif kind == "hang":
            node.resume()
        elif kind in ("deaf", "refuse"):
            node.proxy.set_mode("pass")
        elif kind == "latency":
            node.proxy.set_delay(0.0)
        elif kind == "repl_delay":
            self.harness.set_replication_delay(node, 0.0)
        elif kind == "promote":
            old = self._old_primary.pop(index)
            old.start()  # rejoins as a replica of the new primary
            self._set_roles()
        self._close(index)
