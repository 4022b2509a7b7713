"""Tuning policies as frozen values: reconnect backoff, hedge delay, latency window.

Pure: randomness comes in as an injected :class:`random.Random`, nothing reads a clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from clusterdb.core.description import NodeDescription

__all__ = ["MIN_COST", "Backoff", "HedgePolicy", "SelectionPolicy"]

MIN_COST = 1e-6
"""Seconds: the floor of a node's cost, so a zero latency cannot make a weight infinite."""


def _finite(value: float, what: str, *, low: float = 0.0, strict: bool = False) -> None:
    ok = math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(f"{what} must be a finite number {op} {low:g}, got {value!r}")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter, for probing a down node again.

    ``delay(n) = min(cap, initial * factor ** (n - 1)) * (1 ± jitter)``. Modelled on urllib3's
    frozen ``Retry`` and cassandra-driver's exponential reconnection policy (±15 % jitter), but
    capped at 2 s instead of 600 s: scylladb #15112 shows a long cap leaving a recovered node
    unused for a minute, and clusterdb promises a restarted node back within a few seconds.
    A probe is one connect attempt, cheap enough to repeat every 2 s. The jitter keeps
    thousands of processes that lost a node at the same moment from probing it in lockstep.
    """

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 2.0
    jitter: float = 0.15

    def __post_init__(self) -> None:
        _finite(self.initial, "backoff initial delay", strict=True)
        _finite(self.factor, "backoff factor", low=1.0)
        _finite(self.cap, "backoff cap", low=self.initial)
        if not (0.0 <= self.jitter < 1.0):
            raise ValueError(f"backoff jitter must be in [0, 1), got {self.jitter!r}")

    def base(self, failures: int) -> float:
        """The delay after ``failures`` consecutive failures, before jitter."""
        if failures < 1:
            raise ValueError(f"failures must be >= 1, got {failures!r}")
        if self.factor == 1.0:
            return self.initial
        # Compare exponents instead of computing factor ** n, which overflows for large n.
        steps_to_cap = math.log(self.cap / self.initial) / math.log(self.factor)
        if failures - 1 >= steps_to_cap:
            return self.cap
        return min(self.cap, self.initial * self.factor ** (failures - 1))

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait before the next probe after ``failures`` consecutive failures."""
        spread = rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, self.base(failures) * (1.0 + spread))


@dataclass(frozen=True)
class HedgePolicy:
    """How long to wait on a node before also starting the next one.

    ``delay = clamp(multiplier * latency, min_delay, max_delay)``; ``unknown_delay`` for a node
    with no estimate. The delay must sit well above a healthy node's normal spread of connect
    times, or healthy connects would often open a second, wasted server connection; yet a hung
    node should cost milliseconds, not a driver timeout. Loopback PostgreSQL connects through a
    proxy measured 6 ms median with a tail to 18 ms (34 ms under load); the estimate hedged on
    (:meth:`~clusterdb.latency.LatencyEstimate.value_at`) already sits in the upper part of
    that spread, so 3x it rarely fires by mistake: replaying the measured samples, connect()
    opened 1.01 server connections per connection returned on a quiet machine and 1.03 with
    the CPU saturated (the design allows 1.05). The 10 ms floor covers fast nodes whose
    scheduling noise is as large as their latency; a hung node costs 3x its usual latency
    (18-30 ms for a local node), and the 0.5 s ceiling bounds that for far nodes.

    ``max_delay`` is also how long a ``prefer-replica`` connect keeps a primary that answered
    aside while a replica attempt may still answer (see :mod:`clusterdb.runtime.race`): the longest
    clusterdb waits on a silent node before settling for something else.
    """

    multiplier: float = 3.0
    min_delay: float = 0.010
    max_delay: float = 0.5
    unknown_delay: float = 0.05

    def __post_init__(self) -> None:
        _finite(self.multiplier, "hedge multiplier", strict=True)
        _finite(self.min_delay, "hedge min_delay")
        _finite(self.max_delay, "hedge max_delay", low=self.min_delay)
        _finite(self.unknown_delay, "hedge unknown_delay")

    def delay(self, node: NodeDescription) -> float:
        """Seconds to wait on ``node`` before starting the next node of the plan too."""
        if node.latency is None:
            return self.unknown_delay
        return min(self.max_delay, max(self.min_delay, self.multiplier * node.latency))


@dataclass(frozen=True)
class SelectionPolicy:
    """Which nodes share the connections: a latency window, then weights falling with cost.

    A node's cost is ``latency * (pending + 1)`` (Peak EWMA's "x (in flight + 1)"), so a node
    already busy with attempts looks slower. Candidates are the nodes whose cost is at most
    ``fastest * (1 + window_ratio) + window_ms / 1000``: PyMongo's ``localThresholdMS`` with a
    relative part, because connect latencies differ in scale (a loopback connect takes ~7 ms, a
    cross-region one 100 ms, and "within 2 ms" means different things there). The candidates
    are ordered by a weighted random draw, weights proportional to ``1 / cost **
    weight_exponent``: equal nodes share evenly, a node twice as slow gets a quarter of the
    share of the fastest, and the order after the first draw is the hedge order.

    Weights rather than PyMongo's "two at random, fewer in flight wins": connect() happens far
    less often than queries, so in-flight counts are mostly zero and would make the choice
    uniform; the latency is the signal that is actually there, and pending is already in cost.

    Defaults: a healthy node's estimate wanders with its connect times (measured: loopback
    PostgreSQL through a proxy, median 6 ms, 90th percentile 11-18 ms). The window must hold
    nodes whose estimates differ by that noise (ratio 0.5), yet exclude a node a few round
    trips further away: +3 ms per round trip is about +12 ms per connect (20-24 ms against 6),
    outside the window unless the fastest's estimate is itself at a peak, and then the weights
    still give the fastest the larger share. The 1 ms absolute part keeps nodes a fraction of a
    millisecond apart (unix sockets, same host) from splitting hairs. Replaying measured
    samples of nodes behind 0, +3 and +15 ms proxies, 97.5 % of 200 sequential connects went to
    the fastest (lowest run of 100: 92 %); over three equal nodes the busiest took ~45 % on
    average (33 % would be an even split: the estimates' noise makes the share uneven).

    Trials: a node with an estimate that has served fewer than ``trial_serves`` connections
    (returned by connect()) joins the window whatever its cost, with weight ``trial_weight``,
    until it has. Its estimate then rests only on attempts measured on worker threads: a race
    it lost or the monitor's probes, both of which wait for the GIL while the caller's thread
    runs on (measured: 3-6 ms against 0.12 ms for an equal node, which then stayed out of the
    window for the ~40 s its estimate took to decay). With a trial it serves one connection,
    measured where connections are made, and is judged on that; a node that is really slower
    costs that one connect, once. The weight sets how soon, not how many: 0.25 makes a trial
    likely within a dozen connects, and keeps a burst of concurrent first connects mostly
    elsewhere.
    """

    window_ms: float = 1.0
    window_ratio: float = 0.5
    weight_exponent: float = 2.0
    trial_serves: int = 1
    trial_weight: float = 0.25

    def __post_init__(self) -> None:
        _finite(self.window_ms, "latency window_ms")
        _finite(self.window_ratio, "latency window_ratio")
        _finite(self.weight_exponent, "weight_exponent")
        _finite(self.trial_weight, "trial_weight")
        if self.trial_serves < 0 or isinstance(self.trial_serves, bool):
            raise ValueError(f"trial_serves must be an integer >= 0, got {self.trial_serves!r}")

    def on_trial(self, node: NodeDescription) -> bool:
        """True when ``node`` has an estimate and has served fewer than ``trial_serves``."""
        return (
            node.latency is not None and node.served is not None and node.served < self.trial_serves
        )

    def cost(self, node: NodeDescription) -> float | None:
        """``latency * (pending + 1)`` in seconds; None when the latency is unknown."""
        if node.latency is None:
            return None
        return max(MIN_COST, node.latency) * (max(0, node.pending) + 1)

    def limit(self, fastest_cost: float) -> float:
        """The highest cost inside the window of a fastest node costing ``fastest_cost``."""
        return fastest_cost * (1.0 + self.window_ratio) + self.window_ms / 1000.0

    def weight(self, cost: float, fastest_cost: float) -> float:
        """The chance of a node of ``cost`` inside the window, relative to the fastest's (1.0).

        Taken relative to the fastest so that a large exponent cannot overflow.
        """
        return float((max(MIN_COST, fastest_cost) / max(MIN_COST, cost)) ** self.weight_exponent)
