"""The background monitor: one daemon thread that schedules probes of the nodes it watches.

Healthy nodes are probed once per heartbeat (round-trip time, role, lag), unless the process's
own connects saw them within it, down nodes on a capped exponential backoff
(:class:`~clusterdb.core.schedule.ProbeSchedule`); at most one probe per
node is in flight, run by ``spawn``. The thread sleeps on an event until the next probe is due
and holds clusters only weakly, so an idle monitor costs no CPU and keeps nothing alive. The
process's one monitor lives in :mod:`clusterdb.runtime.process`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

from clusterdb.config import ClusterOptions
from clusterdb.core.recheck import RecheckGate, RecheckPolicy
from clusterdb.core.schedule import ProbeSchedule
from clusterdb.runtime.workers import Spawn

__all__ = ["Monitor", "Probed"]

log = logging.getLogger("clusterdb")

# Even with nothing due, wake up now and then so that a cluster registered without a wake-up
# (or a clock jump) cannot leave the monitor asleep for long.
_MAX_SLEEP = 30.0
_RECHECK = RecheckPolicy()
DISCOVER = "\x00discover"
"""The key of a cluster's discovery poll among its nodes' probes (no node has this name)."""


class Probed(Protocol):
    """What the monitor needs of a cluster."""

    name: str

    @property
    def options(self) -> ClusterOptions: ...

    @property
    def node_names(self) -> tuple[str, ...]:
        """The cluster's node names now (the list may change: see nodes_changed)."""
        ...

    def probe(self, node: str) -> bool:
        """Connect to ``node``, read its role and lag, record the outcome; True when it answered."""
        ...

    def observed_at(self, node: str) -> float | None:
        """When the process's own connects last saw ``node`` as a probe would, or None."""
        ...


class Monitor:
    """Schedules and runs probes for every watched cluster."""

    def __init__(
        self,
        spawn: Spawn,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._spawn = spawn
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._schedules: weakref.WeakKeyDictionary[Probed, dict[str, ProbeSchedule]] = (
            weakref.WeakKeyDictionary()
        )
        self._in_flight: set[tuple[int, str]] = set()
        # request_check(): each cluster's rate limit, and the probes in flight when a check
        # was asked for (probed again when they end, no sooner than the check is due).
        self._rechecks: weakref.WeakKeyDictionary[Probed, RecheckGate] = weakref.WeakKeyDictionary()
        self._again: dict[tuple[int, str], float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False
        # Clusters whose node list comes from discovery: when each polls next.
        self._discovery: weakref.WeakKeyDictionary[Probed, float] = weakref.WeakKeyDictionary()

    # -- called by clusters (cheap: a lock and a dict lookup) --

    def watch(self, cluster: Probed) -> None:
        """Start watching ``cluster`` (idempotent); starts the thread on first use."""
        with self._lock:
            if self._stopping:
                return
            new = cluster not in self._schedules
            if new:
                self._schedules[cluster] = {}
                if getattr(cluster, "discovery", None) is not None:
                    self._discovery[cluster] = self._clock()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="clusterdb-monitor", daemon=True
                )
                self._thread.start()
        if new:
            self._wake.set()

    def unwatch(self, cluster: Probed) -> None:
        with self._lock:
            self._schedules.pop(cluster, None)
            self._rechecks.pop(cluster, None)
            self._discovery.pop(cluster, None)

    def node_failed(self, cluster: Probed, node: str) -> None:
        """A connect() found ``node`` failing: put it on the backoff schedule now."""
        now = self._clock()
        with self._lock:
            nodes = self._schedules.get(cluster)
            if nodes is None:
                return
            current = nodes.get(node) or ProbeSchedule.first(now)
            nodes[node] = current.after_outside_failure(now, cluster.options.backoff, self._rng)
        self._wake.set()

    def nodes_changed(self, cluster: Probed, fresh: tuple[str, ...]) -> None:
        """``cluster``'s node list changed: removed nodes are no longer probed, ``fresh`` ones
        (added, or changed settings) are probed at once."""
        now = self._clock()
        with self._lock:
            nodes = self._schedules.get(cluster)
            if nodes is None:
                return
            current = set(cluster.node_names)
            for name in [n for n in nodes if n not in current]:
                del nodes[name]
            for name in fresh:
                nodes[name] = ProbeSchedule.first(now)
        self._wake.set()

    def request_check(self, cluster: Probed) -> None:
        """Probe every node of ``cluster`` now (role, lag), within the rate limit of
        :class:`~clusterdb.core.recheck.RecheckPolicy`: a sign that the topology changed."""
        now = self._clock()
        with self._lock:
            nodes = self._schedules.get(cluster)
            if nodes is None:
                return
            gate = self._rechecks.get(cluster, RecheckGate())
            due, self._rechecks[cluster] = gate.request(now, _RECHECK)
            for name in (
                (*cluster.node_names, DISCOVER)
                if cluster in self._discovery
                else cluster.node_names
            ):
                key = (id(cluster), name)
                if key in self._in_flight:
                    self._again[key] = min(due, self._again.get(key, due))
                elif name == DISCOVER:
                    self._discovery[cluster] = min(due, self._discovery[cluster])
                else:
                    nodes[name] = (nodes.get(name) or ProbeSchedule.first(now)).no_later_than(due)
        self._wake.set()

    def watching(self, cluster: Probed) -> bool:
        with self._lock:
            return cluster in self._schedules

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread; probes in flight finish on their own (daemon threads)."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread --

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            sleep = self._tick(self._clock())
            self._wake.wait(sleep)
            self._wake.clear()

    def _tick(self, now: float) -> float:
        """Start the probes due now; return how long to sleep. Its own frame, so that no
        cluster stays referenced from the sleeping thread."""
        due, sleep = self._collect_due(now)
        for cluster, node in due:
            if node == DISCOVER:
                self._spawn(self._discover, cluster, name=f"clusterdb-discover-{cluster.name}")
            else:
                name = f"clusterdb-probe-{cluster.name}-{node}"
                self._spawn(self._probe, cluster, node, name=name)
        return sleep

    def _collect_due(self, now: float) -> tuple[list[tuple[Probed, str]], float]:
        """Under the lock: the probes to start now, and how long to sleep afterwards."""
        due: list[tuple[Probed, str]] = []
        next_at = now + _MAX_SLEEP
        with self._lock:
            for cluster, nodes in list(self._schedules.items()):
                for name in cluster.node_names:
                    schedule = nodes.setdefault(name, ProbeSchedule.first(now))
                    key = (id(cluster), name)
                    if key in self._in_flight:
                        continue
                    if schedule.due_at <= now:
                        instead = schedule.deferred(
                            now, cluster.options.heartbeat, cluster.observed_at(name)
                        )
                        if instead is None:
                            self._in_flight.add(key)
                            due.append((cluster, name))
                            continue
                        schedule = nodes[name] = instead  # the connects saw it: no probe
                    next_at = min(next_at, schedule.due_at)
            next_at = self._collect_discovery(now, due, next_at)
        return due, max(0.0, next_at - now)

    def _collect_discovery(
        self, now: float, due: list[tuple[Probed, str]], next_at: float
    ) -> float:
        """Hold the lock: add the discovery polls due now to ``due``; the earliest later one
        (or ``next_at``)."""
        for cluster, at in list(self._discovery.items()):
            key = (id(cluster), DISCOVER)
            if key in self._in_flight:
                continue
            if at <= now:
                self._in_flight.add(key)
                due.append((cluster, DISCOVER))
            else:
                next_at = min(next_at, at)
        return next_at

    def _discover(self, cluster: Probed) -> None:
        """Poll ``cluster``'s discovery source; the next poll a heartbeat later, or sooner
        when a check was asked for meanwhile."""
        try:
            cluster.discover()  # type: ignore[attr-defined]  # only clusters with discovery
        except Exception:  # a bug in discovery must not kill the monitor's bookkeeping
            log.exception("clusterdb: discovery of %s raised", cluster.name)
        now = self._clock()
        with self._lock:
            key = (id(cluster), DISCOVER)
            self._in_flight.discard(key)
            again = self._again.pop(key, None)
            if cluster in self._discovery:
                at = now + cluster.options.heartbeat
                self._discovery[cluster] = at if again is None else min(at, max(now, again))
        self._wake.set()

    def _probe(self, cluster: Probed, node: str) -> None:
        try:
            ok = cluster.probe(node)
        except Exception:  # a bug in a probe must not kill the monitor's bookkeeping
            log.exception("clusterdb: probe of %s/%s raised", cluster.name, node)
            ok = False
        now = self._clock()
        options = cluster.options
        with self._lock:
            key = (id(cluster), node)
            self._in_flight.discard(key)
            again = self._again.pop(key, None)
            nodes = self._schedules.get(cluster)
            if nodes is not None and node in cluster.node_names:  # not removed meanwhile
                current = nodes.get(node) or ProbeSchedule.first(now)
                after = (
                    current.after_success(now, options.heartbeat)
                    if ok
                    else current.after_failure(now, options.backoff, self._rng)
                )
                nodes[node] = after if again is None else after.no_later_than(max(now, again))
        self._wake.set()
