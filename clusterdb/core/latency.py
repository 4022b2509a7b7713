"""Connect-latency estimates: Peak EWMA, a recent minimum, and a spike-tempered ranking value.

* Peak EWMA (Finagle, Linkerd, tower): a sample at or above the estimate replaces it; a lower
  one blends in with ``w = min(exp(-(now - last_update) / decay), 1 - alpha)``,
  ``value = value * w + sample * (1 - w)``. A node that turns slow stops attracting
  connections at once, one fast connect does not undo a slowdown, and ``alpha`` lets a lower
  sample always count (connects are rarer and more uneven than the requests Peak EWMA was
  made for).
* :meth:`LatencyEstimate.value_at`, what selection ranks and hedges by:
  ``sqrt(value * floor) * exp(-(now - last_update) / decay)``.

Why the two additions to Peak EWMA, and the replays that chose them: docs/design/latency.md.
All times are seconds; ``now`` is the caller's ``time.monotonic()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

__all__ = ["DEFAULT_ALPHA", "DEFAULT_DECAY", "DEFAULT_SETTLE", "DEFAULT_WINDOW", "LatencyEstimate"]

DEFAULT_DECAY = 10.0
"""Seconds: Finagle's and Linkerd's default decay time of Peak EWMA."""
DEFAULT_WINDOW = 10
"""Samples kept for :attr:`LatencyEstimate.minimum` (PyMongo keeps 10 too)."""
DEFAULT_ALPHA = 0.5
"""Least fraction of the way a lower sample moves the estimate."""
DEFAULT_SETTLE = 3
"""Samples behind :attr:`LatencyEstimate.floor`: a slowness seen this many times is real."""


def _check(value: float, what: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LatencyEstimate:
    """An immutable latency estimate; ``observe*`` return a new one."""

    value: float | None = None
    """The Peak EWMA estimate in seconds; None before the first sample or lower bound."""
    last_update: float | None = None
    """``now`` of the last sample or lower bound."""
    recent: tuple[float, ...] = ()
    """The last :attr:`window` samples, oldest first (lower bounds are not samples)."""
    samples: int = 0
    """Samples observed in total."""
    bound: float | None = None
    """The largest lower bound seen since the last sample (a hedge fired on this node)."""
    decay: float = DEFAULT_DECAY
    window: int = DEFAULT_WINDOW
    alpha: float = DEFAULT_ALPHA
    settle: int = DEFAULT_SETTLE

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha!r}")
        if not (math.isfinite(self.decay) and self.decay > 0):
            raise ValueError(f"decay must be > 0 seconds, got {self.decay!r}")
        if self.window < 1 or not 1 <= self.settle <= self.window:
            raise ValueError(f"need 1 <= settle <= window, got {self.settle!r}, {self.window!r}")

    @property
    def minimum(self) -> float | None:
        """Smallest of the last :attr:`window` samples; None before the first sample."""
        return min(self.recent) if self.recent else None

    @property
    def floor(self) -> float | None:
        """What the node has just shown: the smallest of its last :attr:`settle` samples,
        raised to any lower bound seen since; None when there is neither."""
        base = min(self.recent[-self.settle :]) if self.recent else None
        if self.bound is None:
            return base
        return self.bound if base is None else max(base, self.bound)

    def observe(self, sample: float, now: float) -> LatencyEstimate:
        """The estimate after a connect that took ``sample`` seconds, finished at ``now``."""
        return self.observed(sample, now)[0]

    def observed(self, sample: float, now: float) -> tuple[LatencyEstimate, float]:
        """:meth:`observe`, and the new estimate's :meth:`value_at` ``now`` (the same
        number, worked out from what observing has at hand: no decay at its own
        ``last_update``, no lower bound, and its floor among the samples just kept)."""
        if not 0.0 <= sample < math.inf:  # also catches NaN; the check itself is a call
            sample = _check(sample, "latency sample")
        # Not through __init__ (nor dataclasses.replace(), slower still): this runs on every
        # connect, and __init__ checks only the settings, copied here unchanged.
        new = object.__new__(LatencyEstimate)
        fields = new.__dict__
        fields.update(self.__dict__)
        value = fields["value"] = self._blend(sample, now)
        fields["last_update"] = now
        recent = fields["recent"] = (*self.recent, sample)[-self.window :]
        fields["samples"] = self.samples + 1
        fields["bound"] = None  # an answer supersedes "has not answered yet"
        return new, math.sqrt(value * min(recent[-self.settle :]))

    def observe_lower_bound(self, elapsed: float, now: float) -> LatencyEstimate:
        """The node has not answered after ``elapsed`` seconds (a hedge fired): the estimate
        becomes at least ``elapsed``. Never lowers it; not a sample for :attr:`minimum`."""
        elapsed = _check(elapsed, "elapsed time")
        if self.bound is not None and self.bound >= elapsed:
            return self
        value = elapsed if self.value is None else max(self.value, elapsed)
        return replace(self, value=value, bound=elapsed, last_update=now)

    def value_at(self, now: float) -> float | None:
        """The estimate to rank and hedge by at ``now`` (None before any information).

        ``sqrt(value * floor) * exp(-(now - last_update) / decay)``. The geometric mean with
        :attr:`floor` tempers a lone spike (6, 6, then 40 ms ranks as 15 ms) yet follows a
        slowness that repeats; the decay brings back a slow node that gets no samples, and,
        the same for every node, keeps an idle cluster's ranking.
        """
        if self.value is None or self.last_update is None:
            return None
        floor = self.floor
        estimate = self.value if floor is None else math.sqrt(self.value * floor)
        return estimate * math.exp(-max(0.0, now - self.last_update) / self.decay)

    def _blend(self, sample: float, now: float) -> float:
        if self.value is None or self.last_update is None or sample >= self.value:
            return sample
        # A clock read before last_update (threads finishing out of order) counts as no time.
        weight = math.exp(-max(0.0, now - self.last_update) / self.decay)
        weight = min(weight, 1.0 - self.alpha)
        return self.value * weight + sample * (1.0 - weight)
