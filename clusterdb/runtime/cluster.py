"""The runtime cluster: config, driver adapter and every node's record, under one lock.

Decisions are taken under the lock, briefly; I/O and logging outside it. A change to a node is a
transition of its :class:`~clusterdb.core.node_state.NodeRecord`, applied in ``with
self._locked as s: s.apply(...)`` (:class:`~clusterdb.runtime.locked.Locked`: the outbox
folded on entry, the kept rankings' epoch ended when the transition says so, its events logged
after the lock). The outbox keeps the lock off a plain connect's path: see
:meth:`Cluster.record_returned`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Sequence

from clusterdb.config import ClusterConfig, ClusterOptions
from clusterdb.core.causal_rules import Avoid, without
from clusterdb.core.description import ClusterDescription, Role, WantedRole
from clusterdb.core.events import Event
from clusterdb.core.node_state import NodeRecord
from clusterdb.core.race_course import HedgeLedger
from clusterdb.core.ranking_cache import RankingCache
from clusterdb.core.rebalance import first_on
from clusterdb.core.roles import preferred_writer
from clusterdb.core.selection import Plan, Ranking, rank
from clusterdb.drivers import ConnectArgs, DriverAdapter, get_adapter
from clusterdb.drivers.bind import bind_nodes
from clusterdb.errors import OperationalError
from clusterdb.runtime.counts import Counts
from clusterdb.runtime.credentials import Redacting
from clusterdb.runtime.discovery import Discovering
from clusterdb.runtime.locked import Locked
from clusterdb.runtime.log import log_connected, log_failed, log_hedging
from clusterdb.runtime.membership import Membership, Watcher, new_record
from clusterdb.runtime.pooled import node_tags, retire_tags
from clusterdb.runtime.probe import ProbeOutcome, probe_once

__all__ = ["Cluster", "Watcher"]

# The logger runtime.log words for (a name imported from a module would be called without
# LOAD_METHOD, a bound method allocated per connect).
log = logging.getLogger("clusterdb")


class Cluster(Membership, Counts, Redacting, Discovering):
    """One registered cluster: what connect(), stats and the monitor work on. Its node list
    can change while it serves (:class:`~clusterdb.runtime.membership.Membership`).

    ``targets``: each node's driver arguments (:func:`~clusterdb.drivers.bind.bind_nodes`),
    bound here when not given, which raises ConfigError for settings the driver refuses.
    """

    def __init__(
        self,
        config: ClusterConfig,
        adapter: DriverAdapter | None = None,
        targets: Sequence[ConnectArgs] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.adapter = adapter if adapter is not None else get_adapter(config.driver)
        self._start_redacting()  # the redactor, and the password provider if any
        if targets is None:
            targets = bind_nodes(config, self.adapter)
        selection = config.options.selection
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._membership = threading.Lock()  # taken before _lock, never inside it
        # Replaced whole by a membership change, never mutated: read without the lock.
        self._nodes = {e.name: new_record(e, config) for e in config.nodes}
        self._stale: dict[str, int] = {}  # attempts pending on retired records, per name
        self._single_writer = config.options.single_writer
        self._targets = {e.name: t for e, t in zip(config.nodes, targets, strict=True)}
        self._connects = self._failures = 0  # connect() calls that returned, that raised
        self._causal = (0, 0)  # connect(after=token) calls that waited, that fell back
        self._watched_by: Watcher | None = None
        self._in_flight = 0  # attempts pending on every node, queued ones included
        self.hedges = HedgeLedger()  # connects and hedges in flight; under the lock
        # The floor: a quarter of the latency window's absolute part (docs/design/state.md).
        self._rankings = RankingCache(floor=selection.window_ms / 4 / 1000.0)
        # (node, latency, monotonic, wall, role read) of connections returned whose bookkeeping
        # waits for fold(); each is also still counted in _in_flight and its node's pending.
        self._outbox: deque[tuple[NodeRecord, float, float, float, bool]] = deque()
        self._locked = Locked(self.name, self._lock, self._fold, self._rankings)
        # Pools: the tag each connection carries, per node; retired by close().
        self.tags = node_tags(self)
        self.retired = False
        self._start_discovery()  # Patroni's node list (a first poll when the config has none)

    def __repr__(self) -> str:
        nodes = ", ".join(self._nodes)
        return f"<Cluster {self.name!r} driver={self.adapter.name} nodes=[{nodes}]>"

    @property
    def options(self) -> ClusterOptions:
        return self.config.options

    @property
    def node_names(self) -> tuple[str, ...]:
        """Node names in list order (a map replaced whole on a change: no lock needed)."""
        return tuple(self._nodes)

    def target(self, node: str) -> ConnectArgs:
        """The driver arguments of ``node`` (no lock needed); raises OperationalError for a
        node removed since the plan naming it was made: it is not tried again."""
        try:
            return self._targets[node]
        except KeyError:
            raise OperationalError(
                f"node {node!r} was removed from cluster {self.name!r}; not tried"
            ) from None

    # -- decisions --

    def describe(self) -> ClusterDescription:
        """What is known about every node now (an immutable value)."""
        with self._locked:
            return self._describe(time.monotonic())

    def _describe(self, now: float) -> ClusterDescription:
        """Hold the lock."""
        nodes = tuple(n.describe(now) for n in self._nodes.values())
        if self._single_writer:
            return ClusterDescription(self.name, nodes, preferred_writer(nodes))
        return ClusterDescription(self.name, nodes)

    def begin(
        self, wanted: WantedRole, prefer: str | None = None, avoid: Avoid | None = None
    ) -> tuple[Plan, ClusterDescription]:
        """Plan one connect() and count its first attempts (all of a race) as pending;
        ``prefer``: a node to try first when the plan has it (a pool moving a connection);
        ``avoid``: (nodes to leave out, why) (a token they have not applied).

        A ranking is kept (:class:`RankingCache`) while no attempt is pending but queued ones.
        A kept ranking does not wait for the outbox (the plain lock): the latest connect's
        estimate reaches selection one connect later."""
        with self._lock:
            now = time.monotonic()
            kept = None
            if self._in_flight == len(self._outbox):  # none pending but returned ones
                kept = self._rankings.get(wanted, now)
            if kept is None:
                self._fold()
                desc, ranking = self._rank(wanted, now)
            else:
                ranking, desc = self._rankings.reuse(wanted, kept), kept[3]
            chosen = ranking.draw(self._rng)
            if avoid is not None:
                chosen = without(chosen, *avoid)
            if prefer is not None:
                chosen = first_on(chosen, prefer)
            first = chosen.nodes if chosen.race else chosen.nodes[:1]
            for name in first:
                self._nodes[name].pending += 1
            self._in_flight += len(first)
            self.hedges.connecting += 1  # until its outcome is recorded
        return chosen, desc

    def _rank(self, wanted: WantedRole, now: float) -> tuple[ClusterDescription, Ranking]:
        """Hold the lock, the outbox folded."""
        o = self.config.options
        desc = self._describe(now)
        ranking = rank(
            desc, wanted, max_lag=o.max_lag, selection=o.selection, hedge=o.hedge, now=now
        )
        if not self._in_flight:  # pending attempts weigh in a ranking: not one to keep
            self._rankings.store(wanted, ranking, desc, now)  # worked out if kept long
            for d in desc.nodes:
                self._nodes[d.name].keep = self._rankings.band(d.latency)
        return desc, ranking

    # -- attempts (counters only: no transition, so the plain lock) --

    def attempt_started(self, node: str, hedge: bool = False) -> bool:
        """A failure (``hedge``: a silent node, if the hedge budget has a unit for this
        connect's first hedge) starts one more attempt on ``node``; whether it does (removed:
        one more late result to ignore, its attempt fails at :meth:`target`)."""
        with self._lock:
            if hedge and not self.hedges.try_hedge():
                return False
            n = self._nodes.get(node)
            if n is None:
                self._stale[node] = self._stale.get(node, 0) + 1
                return True
            n.pending += 1
            self._in_flight += 1
        return True

    def race_ended(self, hedged: bool) -> None:
        """A race is over: when it ``hedged``, its unit of the hedge budget is free again."""
        if hedged:
            with self._lock:
                self.hedges.hedging -= 1

    def attempt_abandoned(self, node: str) -> None:
        """An attempt on ``node`` in the calling thread was interrupted (KeyboardInterrupt...):
        no longer pending, and not the node's failure."""
        with self._lock:
            self._ended(node)

    def _ended(self, node: str) -> NodeRecord | None:
        """Hold the lock: an attempt on ``node`` is no longer pending; None when it was
        counted against a retired record (its outcome is ignored: runtime.membership)."""
        stale = self._stale
        if stale and node in stale:
            if stale[node] > 1:
                stale[node] -= 1
            else:
                del stale[node]
            return None
        n = self._nodes.get(node)
        if n is not None:
            n.pending -= 1
            self._in_flight -= 1
        return n

    def record_discarded(self, node: str) -> None:
        """A connection to ``node``, recorded as a success, was closed unused after all (a
        primary held aside for ``prefer-replica`` while a replica answered)."""
        with self._lock:
            n = self._nodes.get(node)
            if n is not None:
                n.discarded += 1

    def record_outcome(self, ok: bool) -> None:
        """One connect() returned a connection (``ok``) or raised."""
        with self._lock:
            self.hedges.connecting -= 1
            if ok:
                self._connects += 1
            else:
                self._failures += 1

    # -- outcomes (each attempt records its own, winners and late losers alike) --

    def record_success(
        self, node: str, latency: float, role: Role | None, discarded: bool, returned: bool = False
    ) -> None:
        """An attempt on ``node`` connected after ``latency`` s; ``discarded``: closed unused;
        ``returned``: its connect() returns it (:meth:`record_outcome` in the same breath)."""
        now, wall = time.monotonic(), time.time()
        if log.isEnabledFor(logging.DEBUG):
            log_connected(self.name, node, latency, discarded)
        with self._locked as s:
            if returned:
                self._connects += 1
                self.hedges.connecting -= 1
            n = self._ended(node)
            if n is not None:
                s.apply(n.on_connected(latency, role, now, wall, discarded))

    def record_returned(self, node: str, latency: float, role: Role | None) -> None:
        """As :meth:`record_success` with ``returned=True``, for the connection that the
        first attempt of a connect() made in the calling thread; when it changes nothing but
        counters and the estimate (the node up, off trial, its role as known), queued with no
        lock for :meth:`fold`. A change landing between the unlocked read and the queueing is
        taken as having come after this connect."""
        n = self._nodes.get(node)
        if n is None or n.state != "up" or n.served < n.trial_serves or (role and role != n.role):
            self.record_success(node, latency, role, False, returned=True)
            return
        self._outbox.append((n, latency, time.monotonic(), time.time(), role is not None))
        if log.isEnabledFor(logging.DEBUG):
            log_connected(self.name, node, latency)

    def fold(self) -> None:
        """Do the bookkeeping :meth:`record_returned` queued. A connect's first attempt calls
        this while it waits for its server; ``_locked`` does it first, so no reader ever
        sees a connect half-counted."""
        if self._outbox:
            with self._lock:
                self._fold()

    def _fold(self) -> None:
        """Hold the lock."""
        outbox = self._outbox
        while outbox:
            n, latency, now, wall, observed = outbox.popleft()
            if observed:
                n.observed_at = now
            self._connects += 1
            self.hedges.connecting -= 1
            if n.retired:  # removed or changed since: the count is all that is left
                self._ended(n.name)
                continue
            n.pending -= 1
            self._in_flight -= 1
            if n.on_returned(latency, now, wall):
                self._rankings.invalidate()

    def record_failure(self, node: str, exc: BaseException, line: str | None = None) -> None:
        """An attempt on ``node`` failed with ``exc`` (``line``: its scrubbed one-line form)."""
        if line is None:
            line = self.redactor.one_line(exc)
        now, wall = time.monotonic(), time.time()
        if node in self._nodes:  # a removed node's failure (its attempt refused) is no news
            log_failed(self.name, node, line)
        with self._locked as s:
            n = self._ended(node)
            events = () if n is None else s.apply(n.on_failed(line, now, wall))
        self._went_down(node, events)

    def record_lost(self, node: str, exc: BaseException) -> None:
        """A connection to ``node`` broke with ``exc``: the node is down until proven up."""
        line = self.redactor.one_line(exc)
        now, wall = time.monotonic(), time.time()
        with self._locked as s:
            n = self._nodes.get(node)
            events = () if n is None else s.apply(n.on_connection_lost(line, now, wall))
        self._went_down(node, events)

    def _went_down(self, node: str, events: tuple[Event, ...]) -> None:
        watcher = self._watched_by  # close() may clear it at any time
        if events and watcher is not None:  # the only event of a failure: the node went down
            watcher.node_failed(self, node)

    def record_read_only(self, node: str) -> None:
        """``node`` refused a write as read-only: it is no primary now."""
        with self._locked as s:
            n = self._nodes.get(node)
            if n is not None:
                s.apply(n.on_read_only_error())

    def request_check(self) -> None:
        """Have the monitor re-read every node's role now (it rate-limits such requests)."""
        watcher = self._watched_by  # close() may clear it at any time
        if watcher is not None:
            watcher.request_check(self)

    @property
    def rankings(self) -> RankingCache:
        """The kept rankings; their ``epoch`` changes whenever one may no longer hold (read
        without the lock: pools' checks do, at every checkout)."""
        return self._rankings

    def record_hedge(self, node: str, elapsed: float) -> None:
        """``node`` has not answered after ``elapsed`` s: rank it down now, not at its timeout."""
        now = time.monotonic()
        log_hedging(self.name, node, elapsed)
        with self._locked as s:
            n = self._nodes.get(node)
            if n is not None:
                s.apply(n.on_hedge(elapsed, now))

    def record_probe(
        self, node: str, outcome: ProbeOutcome, record: NodeRecord | None = None
    ) -> None:
        """The monitor probed ``node`` (its record ``record``, when known) and found
        ``outcome``; ignored when the node was removed or changed meanwhile."""
        error = None if outcome.ok else outcome.error
        line = None if error is None else self.redactor.one_line(error)
        now, wall = time.monotonic(), time.time()
        with self._locked as s:
            n = self._nodes.get(node)
            if n is not None and (record is None or n is record):
                s.apply(n.on_probe(outcome, now, wall, line))

    # -- process lifecycle --

    def probe(self, node: str) -> bool:
        """Probe ``node`` now (connect, role, lag) and record it; True when it answered (or was
        removed: nothing to probe)."""
        record, target = self._nodes.get(node), self._targets.get(node)
        if record is None or target is None:
            return True
        timeout = self.options.connect_timeout
        outcome = probe_once(self.adapter, target, timeout, self.credentials)
        self.record_probe(node, outcome, record)
        return outcome.ok

    def close(self) -> None:
        """Stop this cluster's background work (it is being unregistered or replaced)."""
        self.retired = True
        retire_tags(self.tags.values())
        watcher, self._watched_by = self._watched_by, None
        if watcher is not None:  # it holds clusters weakly; unwatch() makes the end immediate
            watcher.unwatch(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: the parent's attempt threads and lock holders do not exist."""
        self._lock = threading.Lock()
        self._membership = threading.Lock()
        self._redaction = threading.Lock()
        self._locked = Locked(self.name, self._lock, self._fold, self._rankings)
        self._rng = random.Random()
        self._stale = {}
        self._fold()  # the parent's returned connections, counted as the parent counted them
        self._in_flight = 0
        self.hedges = HedgeLedger(self.hedges.budget)
        for n in self._nodes.values():
            n.pending = 0
