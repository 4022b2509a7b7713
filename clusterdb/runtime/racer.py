"""Raced and hedged connect attempts, in daemon threads, within one overall deadline.

:func:`connect` plans under the cluster's lock, then :func:`race` runs the plan: the first
attempt starts in a worker thread (so that a hung node can be hedged), the next one starts when
the current one fails or has not answered within its hedge delay, and the first success wins.
A race plan (nothing known yet) starts every node at once.

Drivers that can pause a connect begin the first attempt in the calling thread instead
(:meth:`DriverAdapter.start`): for up to the hedge delay the attempt runs right there, with no
thread hand-over (measured: ~80 µs of a 0.2 ms PyMySQL connect, ~0.35 ms of a 6 ms psycopg
one); a node that has not answered by then is handed, socket and all, to a worker thread and
hedged as usual. psycopg pauses anywhere in its connect (it is a generator); PyMySQL only
after the TCP connect, so there the hedge waits for the server's greeting, not the whole
handshake. When that first attempt connects to a node whose role is known (or need not be),
nothing else has started: it wins outright, and :func:`connect` returns it with no race
object, queue or thread at all, and its stats are queued (:meth:`Cluster.record_returned`)
for the next attempt to record while it waits for its server (``bench/breakdown.py``: the
stages after PyMySQL's handshake went from ~31 to ~6 µs in place). Nodes given by hostname
run on a worker from the start: a resolver lookup cannot be paused.

Rules that keep stats exact and leak nothing, whatever the timing:

* every attempt records its own outcome in the cluster's stats when it finishes, winners,
  late losers and attempts abandoned at the deadline alike;
* a successful attempt must *claim* the race before handing its connection over, and the
  waiting thread *abandons* it when it gives up (deadline, interrupt): whichever comes first
  settles the race, and an attempt that finds it settled closes its own connection;
* each driver attempt is given what is left of the deadline (rounded up to what the driver
  supports), so an abandoned attempt ends on its own soon after the deadline.

``role="prefer-replica"`` accepts a primary, but only as a fallback: a primary that answers
is handed to the waiting thread *unclaimed* and kept aside while attempts that may still
produce a replica run, for at most the hedge policy's ``max_delay``; a replica answering in
that time wins and the primary is closed (counted as discarded). Without this, the first
connect of a process (every node raced, roles unknown) went to the primary about 40 % of the
time on a healthy 1+2 cluster, and a replica slow for a moment (a hedge delay of some 20 ms)
handed its connections to the primary. Once a primary is in hand no further node is started:
only attempts already running can beat it.

Plain daemon threads rather than ``concurrent.futures``: an executor's exit hook joins its
workers, so an attempt hung in a driver would block interpreter exit.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Callable
from functools import partial
from time import monotonic
from typing import Any, Literal

from clusterdb.core.description import Role, WantedRole
from clusterdb.core.redact import Redactor
from clusterdb.core.roles import WANTED_ROLES, role_fits, role_is_fallback
from clusterdb.core.selection import Plan
from clusterdb.drivers.base import Pending
from clusterdb.errors import AllNodesFailed, ConfigError, NoSuitableNode, bind_to_driver
from clusterdb.runtime import process
from clusterdb.runtime.cluster import Cluster

__all__ = ["Attempt", "connect", "race"]

Attempt = Callable[[str, float], Any]
"""``attempt(node, timeout)``: open a connection to ``node`` within ``timeout`` seconds."""

Start = Callable[[str, float, float], Any]
"""``start(node, timeout, patience)``: a connection to ``node`` when its server answers within
``patience`` s, else a :class:`~clusterdb.drivers.base.Pending` attempt to finish elsewhere."""

# (plan index, connection or None, error or None, the error's scrubbed line, True for a
# prefer-replica fallback: a primary's connection handed over unclaimed)
_Result = tuple[int, Any, BaseException | None, str, bool]

_NEVER = math.inf
_NOT_CONNECTED = (Exception, Pending)  # what start() gives when it has no connection yet


def connect(cluster: Cluster, wanted: WantedRole, overrides: dict[str, Any]) -> Any:
    """One clusterdb.connect(): plan, race, count the outcome. ``overrides`` go to the driver,
    except ``connect_timeout``, the overall deadline."""
    if wanted not in WANTED_ROLES:
        raise ConfigError(f"role must be one of {', '.join(WANTED_ROLES)}, not {wanted!r}", "role")
    if "connect_timeout" in overrides:
        timeout = _deadline(overrides.pop("connect_timeout"))
    else:
        timeout = cluster.options.connect_timeout  # checked when the cluster was configured
    adapter = cluster.adapter
    cluster.watch(process.monitor())
    chosen, desc = cluster.begin(wanted)
    if not chosen.nodes:
        cluster.record_outcome(False)
        error = bind_to_driver(NoSuitableNode, adapter.operational_error)
        raise error(cluster.name, wanted, chosen.rejected)
    if adapter.role_is_free or wanted != "any":
        detect: Callable[[str], bool] = _always
    else:
        # Learn each node's role once; the monitor keeps it fresh.
        detect = desc.unknown_roles.__contains__
    begun: tuple[Any, float] | None = None
    try:
        if adapter.starts_inline and not chosen.race:
            # The first attempt, in this thread. When it connects to a node of known role,
            # as most do, nothing else has started: it has won, and no race is needed.
            node = chosen.nodes[0]
            began = monotonic()
            patience = min(chosen.hedge_delays[0], timeout)
            target = cluster.target(node)
            # idle=cluster.fold: earlier connects' stats, recorded while the server works.
            conn = _begin_here(
                cluster, node, adapter.start, target, overrides, timeout, patience, cluster.fold
            )
            if not isinstance(conn, _NOT_CONNECTED):
                done, role = _settled_here(cluster, node, conn, wanted, detect)
                if done:
                    cluster.record_returned(node, monotonic() - began, role)
                    return conn
            begun = (conn, began)

        def attempt(node: str, remaining: float) -> Any:
            return adapter.connect(cluster.target(node), overrides, remaining)

        conn = race(
            cluster,
            chosen,
            attempt,
            timeout=timeout,
            wanted=wanted,
            detect=detect,
            redactor=cluster.redactor_for(overrides),
            begun=begun,
        )
    except BaseException:
        cluster.record_outcome(False)
        raise
    cluster.record_outcome(True)
    return conn


def _settled_here(
    cluster: Cluster, node: str, conn: Any, wanted: WantedRole, detect: Callable[[str], bool]
) -> tuple[bool, Role | None]:
    """Whether the first attempt's connection wins outright, and the role read on it: its
    node's role is known, or read with no round trip (psycopg) and fits ``wanted``. Anything
    else (a role to query, a wrong role, a prefer-replica primary) is the race's to handle."""
    if not detect(node):
        return True, None
    adapter = cluster.adapter
    if not adapter.role_is_free:
        return False, None
    try:
        role = adapter.detect_role(conn)
    except Exception:
        return False, None  # the race reads it again and counts the failure
    except BaseException:  # interrupted: not the node's failure
        adapter.close_quietly(conn)
        cluster.attempt_abandoned(node)
        raise
    if not role_fits(wanted, role) or role_is_fallback(wanted, role):
        return False, None
    return True, role


def _begin_here(
    cluster: Cluster, node: str, start: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``start(*args, **kwargs)``, an attempt on ``node`` begun in the calling thread: a
    connection, a :class:`Pending` attempt, or the Exception it raised (the node's failure,
    for the race to record). An interrupt (KeyboardInterrupt...) is not the node's failure:
    it propagates."""
    try:
        return start(*args, **kwargs)
    except Exception as exc:
        return exc
    except BaseException:
        cluster.attempt_abandoned(node)
        raise


def _always(node: str) -> bool:
    return True


def _deadline(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"must be a number of seconds, not {value!r}", "connect_timeout")
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"must be > 0 seconds, not {value!r}", "connect_timeout")
    return float(value)


def race(
    cluster: Cluster,
    plan: Plan,
    attempt: Attempt,
    *,
    timeout: float,
    wanted: WantedRole = "any",
    detect: Callable[[str], bool] = _always,
    redactor: Redactor | None = None,
    start: Start | None = None,
    begun: tuple[Any, float] | None = None,
) -> Any:
    """Run ``plan`` (its first attempts already counted pending by ``cluster.begin``).

    Returns the winning connection; raises the driver-bound :class:`AllNodesFailed` when every
    attempt failed or the ``timeout`` (seconds) passed. ``detect(node)`` says whether to read
    the role of a connection to ``node``; a connection of the wrong role is closed, counted as
    discarded, and the next node is tried. With ``start``, the first attempt of a plan that
    is not a race begins in the calling thread (see the module's docstring); ``begun``: it
    began already, ``(what start() gave or raised, when it began)``, and the deadline runs
    from then.
    """
    redactor = redactor or cluster.redactor
    if begun is None and start is not None and not plan.race:
        began = monotonic()
        patience = min(plan.hedge_delays[0], timeout)
        node = plan.nodes[0]
        begun = (_begin_here(cluster, node, start, node, timeout, patience), began)
    began = monotonic() if begun is None else begun[1]
    return _Race(cluster, attempt, timeout, wanted, detect, redactor, began).run(plan, begun)


class _Race:
    __slots__ = (
        "attempt",
        "cluster",
        "deadline",
        "detect",
        "fallback",
        "fallback_wait",
        "lock",
        "nodes",
        "redactor",
        "results",
        "settled",
        "timeout",
        "wanted",
    )

    def __init__(
        self,
        cluster: Cluster,
        attempt: Attempt,
        timeout: float,
        wanted: WantedRole,
        detect: Callable[[str], bool],
        redactor: Redactor,
        began: float,
    ) -> None:
        self.cluster = cluster
        self.attempt = attempt
        self.timeout = timeout
        self.deadline = began + timeout
        self.wanted = wanted
        self.detect = detect
        self.redactor = redactor
        self.lock = threading.Lock()
        self.results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self.settled: Literal["won", "abandoned"] | None = None
        self.nodes: tuple[str, ...] = ()
        # prefer-replica: the (plan index, connection) of a primary held by the waiting thread
        # while a replica may still answer, for at most fallback_wait seconds.
        self.fallback: tuple[int, Any] | None = None
        self.fallback_wait = cluster.options.hedge.max_delay

    def claim(self) -> bool:
        """A successful attempt asks to win: True for the first one, unless abandoned."""
        with self.lock:
            if self.settled is not None:
                return False
            self.settled = "won"
            return True

    def abandon(self) -> bool:
        """The waiting thread gives up: True unless an attempt has won already."""
        with self.lock:
            if self.settled is None:
                self.settled = "abandoned"
            return self.settled == "abandoned"

    # -- the waiting thread --

    def run(self, plan: Plan, begun: tuple[Any, float] | None = None) -> Any:
        try:
            return self._run(plan, begun)
        except BaseException:
            self._abandon()  # a no-op after giving up: the race is abandoned already
            raise

    def _run(self, plan: Plan, begun: tuple[Any, float] | None) -> Any:  # noqa: C901, PLR0915  (to split)
        nodes, delays = plan.nodes, plan.hedge_delays
        self.nodes = nodes
        count = len(nodes)
        started = count if plan.race else 1
        last_start = monotonic()
        if begun is not None:
            last_start = begun[1]
            self._carry_on(nodes[0], *begun)
        else:
            for index in range(started):
                self._launch(index, nodes[index], partial(self.attempt, nodes[index]))
            last_start = monotonic()
        next_hedge = last_start + delays[0] if started < count else _NEVER
        use_fallback_at = _NEVER
        outstanding = started
        errors: dict[str, tuple[BaseException, str]] = {}
        while True:
            wake = min(self.deadline, next_hedge, use_fallback_at)
            try:
                index, conn, exc, line, fallback = self.results.get(
                    timeout=max(0.0, wake - monotonic())
                )
            except queue.Empty:
                now = monotonic()
                if self.fallback is not None and now >= min(use_fallback_at, self.deadline):
                    return self._take_fallback()  # no replica answered in time
                if now >= self.deadline:
                    break
                if now < next_hedge:
                    continue
                self.cluster.record_hedge(nodes[started - 1], now - last_start)
            else:
                if conn is not None and not fallback:
                    self._drop_fallback()
                    return conn
                outstanding -= 1
                if fallback:
                    if self.fallback is None:
                        self.fallback = (index, conn)
                        use_fallback_at = monotonic() + self.fallback_wait
                        next_hedge = _NEVER  # only attempts already running can beat it
                    else:
                        self._discard(index, conn)  # one primary in hand is enough
                else:
                    assert exc is not None
                    errors[nodes[index]] = (exc, line)
                if self.fallback is not None:
                    if outstanding == 0:
                        return self._take_fallback()  # nothing running could bring a replica
                    continue
                if started == count:
                    if outstanding == 0:
                        break
                    continue
            # A hedge delay ran out, or an attempt failed: start the next node as well.
            self.cluster.attempt_started(nodes[started])
            self._launch(started, nodes[started], partial(self.attempt, nodes[started]))
            started += 1
            outstanding += 1
            last_start = monotonic()
            next_hedge = last_start + delays[started - 1] if started < count else _NEVER
        return self._give_up(nodes[:started], errors)

    def _give_up(self, tried: tuple[str, ...], errors: dict[str, tuple[BaseException, str]]) -> Any:
        if not self.abandon():
            # An attempt won just now: its connection is on its way (it is recording stats).
            return self._winner()
        while True:  # failures that arrived since the deadline passed
            try:
                index, conn, exc, line, _ = self.results.get_nowait()
            except queue.Empty:
                break
            if conn is not None:  # a fallback handed over just before the race was abandoned
                self._discard(index, conn)
                continue
            assert exc is not None
            errors.setdefault(tried[index], (exc, line))
        silent = f"no answer within {self.timeout:g} s (connect_timeout)"
        adapter = self.cluster.adapter
        ordered: dict[str, BaseException] = {}
        lines: dict[str, str] = {}
        for node in tried:
            exc, line = errors.get(node) or (adapter.operational_error(silent), silent)
            ordered[node], lines[node] = exc, line
        error_cls = bind_to_driver(AllNodesFailed, adapter.operational_error)
        last = next((errors[n][0] for n in reversed(tried) if n in errors), None)
        raise error_cls(self.cluster.name, ordered, lines) from last

    def _winner(self) -> Any:
        """The connection of the attempt that claimed the race (on its way in the queue);
        fallbacks handed over before the claim are closed on the way."""
        while True:
            index, conn, _, _, fallback = self.results.get()
            if conn is None:
                continue
            if not fallback:
                return conn
            self._discard(index, conn)

    def _abandon(self) -> None:
        """Interrupted (KeyboardInterrupt...): let no connection escape unclosed."""
        if not self.abandon():
            self.cluster.adapter.close_quietly(self._winner())
        self._drop_fallback()
        while True:  # fallbacks handed over before the race was settled
            try:
                index, conn, _, _, _ = self.results.get_nowait()
            except queue.Empty:
                break
            if conn is not None:
                self._discard(index, conn)

    # -- prefer-replica fallbacks (the waiting thread) --

    def _take_fallback(self) -> Any:
        """Use the primary held aside: claim the race for it, unless a replica just did."""
        assert self.fallback is not None
        if self.claim():
            _, conn = self.fallback
            self.fallback = None
            return conn
        winner = self._winner()  # a replica claimed the race meanwhile: it wins after all
        self._drop_fallback()
        return winner

    def _drop_fallback(self) -> None:
        if self.fallback is not None:
            index, conn = self.fallback
            self.fallback = None
            self._discard(index, conn)

    def _discard(self, index: int, conn: Any) -> None:
        """Close a fallback that will not be used, and count it as discarded."""
        self.cluster.adapter.close_quietly(conn)
        self.cluster.record_discarded(self.nodes[index])

    # -- attempt threads --

    def _carry_on(self, node: str, begun: Any, started: float) -> None:
        """The plan's first attempt began in this (the calling) thread at ``started``: its
        outcome goes to the results queue like a worker's, or a worker finishes it when the
        server is silent."""
        if isinstance(begun, Exception):
            self._failed(0, node, begun)
        elif isinstance(begun, Pending):
            self._launch(0, node, begun.finish, started, begun.cancel)
        else:
            self._connected(0, node, begun, started, here=True)

    def _launch(
        self,
        index: int,
        node: str,
        connect: Callable[[float], Any],
        started: float | None = None,
        cancel: Callable[[], None] | None = None,
    ) -> None:
        """Run ``connect(remaining)`` on a worker; ``started``: when the attempt began, if it
        began in the calling thread (its latency counts from there)."""
        try:
            process.spawn(
                self._attempt,
                index,
                node,
                connect,
                started,
                name=f"clusterdb-connect-{self.cluster.name}-{node}",
            )
        except Exception as exc:  # "can't start new thread": count it, try the next node
            if cancel is not None:
                cancel()
            self._failed(index, node, exc)

    def _attempt(
        self,
        index: int,
        node: str,
        connect: Callable[[float], Any],
        started: float | None,
    ) -> None:
        now = monotonic()
        try:
            conn = connect(self.deadline - now)
        except BaseException as exc:
            self._failed(index, node, exc)
            return
        self._connected(index, node, conn, now if started is None else started)

    def _connected(
        self, index: int, node: str, conn: Any, started: float, here: bool = False
    ) -> None:
        """An attempt begun at ``started`` got ``conn``: check its role, settle, record."""
        adapter = self.cluster.adapter
        latency = monotonic() - started
        try:
            role = adapter.detect_role(conn) if self.detect(node) else None
        except Exception as exc:
            adapter.close_quietly(conn)
            self._failed(index, node, exc)
            return
        except BaseException as exc:
            adapter.close_quietly(conn)
            if here:  # interrupted in the calling thread: not the node's failure
                self.cluster.attempt_abandoned(node)
                raise
            self._failed(index, node, exc)
            return
        if not role_fits(self.wanted, role):
            adapter.close_quietly(conn)
            self.cluster.record_success(node, latency, role, discarded=True)
            line = f"is a {role}, wanted {self.wanted}"
            self.results.put((index, None, adapter.operational_error(line), line, False))
            return
        if role_is_fallback(self.wanted, role):
            self._offer_fallback(index, node, conn, latency)
            return
        won = self.claim()
        if not won:
            adapter.close_quietly(conn)
        # Recorded before the hand-over, so that stats read after connect() returns count it.
        self.cluster.record_success(node, latency, role, discarded=not won)
        if won:
            self.results.put((index, conn, None, "", False))

    def _offer_fallback(self, index: int, node: str, conn: Any, latency: float) -> None:
        """prefer-replica got a primary: hand it to the waiting thread unclaimed (it decides
        whether to use it), or close it when the race is settled already."""
        # Under the race's lock (the cluster's lock is only ever taken inside it, never the
        # other way round): a race settled later finds the fallback in the queue, and the
        # outcome is recorded once, before the hand-over, with the right ``discarded``.
        with self.lock:
            handed = self.settled is None
            self.cluster.record_success(node, latency, "primary", discarded=not handed)
            if handed:
                self.results.put((index, conn, None, "", True))
        if not handed:
            self.cluster.adapter.close_quietly(conn)

    def _failed(self, index: int, node: str, exc: BaseException) -> None:
        line = self.redactor.one_line(exc)
        self.cluster.record_failure(node, exc, line)
        self.results.put((index, None, self._safe(exc, line), line, False))

    def _safe(self, exc: BaseException, line: str) -> BaseException:
        """``exc``, or a stand-in carrying only ``line`` when its text holds a secret."""
        try:
            text = f"{exc}\n{exc!r}"
        except Exception:
            text = ""
        if text and self.redactor.scrub(text) == text:
            return exc
        return self.cluster.adapter.operational_error(line)
