"""Tuning policies as frozen values: reconnect backoff, hedge delay, latency window.

Pure: randomness comes in as an injected :class:`random.Random`, nothing reads a clock.
Each keeps its own invariants (ValueError on construction); the config keys that set them are
checked before, with their key paths, by :mod:`clusterdb.config.schema`.
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

    ``delay(n) = min(cap, initial * factor ** (n - 1)) * (1 ± jitter)`` after ``n``
    consecutive failures. The short cap (2 s) brings a restarted node back within seconds; the
    jitter keeps processes that lost a node together from probing it in lockstep
    (docs/design/selection.md).
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

    ``delay = clamp(multiplier * latency * (pending + 1), min_delay, max_delay)``,
    ``latency`` being the estimate hedged on
    (:meth:`~clusterdb.core.latency.LatencyEstimate.value_at`) and ``pending`` the node's
    attempts already in flight (Peak EWMA's cost, as :class:`SelectionPolicy` weighs it);
    ``unknown_delay`` for a node with no estimate. Well above a healthy node's spread of
    connect times (few wasted second connections), far below a driver timeout (a hung node
    costs milliseconds); figures in docs/design/selection.md. The ``pending`` factor: a
    connect queued behind others on a busy node is slow, not silent, and a hedge then only
    adds a server connection to a machine already short of time (32 threads on 2 cores: the
    hedges that lost fell from 40-82 to 0-2 per bench run, docs/design/selection.md).

    ``max_delay`` is also how long a ``prefer-replica`` connect keeps a primary that answered
    aside while a replica attempt may still answer (see :mod:`clusterdb.runtime.race`): the
    longest clusterdb waits on a silent node before settling for something else.
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
        waited = self.multiplier * node.latency * (node.pending + 1)
        return min(self.max_delay, max(self.min_delay, waited))


@dataclass(frozen=True)
class SelectionPolicy:
    """Which nodes share the connections: a latency window, then weights falling with cost.

    * ``cost = latency * (pending + 1)`` (Peak EWMA's "x (in flight + 1)"): a node busy with
      attempts looks slower.
    * Candidates: ``cost <= fastest * (1 + window_ratio) + window_ms / 1000``, relative and
      absolute because connect latencies differ in scale from loopback to cross-region.
    * Order: a weighted random draw, ``weight = 1 / cost ** weight_exponent``; the order after
      the first draw is the hedge order.
    * Trials: a node with an estimate that has served fewer than ``trial_serves`` connections
      joins the window whatever its cost, with weight ``trial_weight``, so a node known only
      from attempts measured on worker threads is judged on a connection it served.

    Why these defaults, and the replays behind them: docs/design/selection.md.
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
