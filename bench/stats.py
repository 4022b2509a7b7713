"""Pure statistics helpers of the benchmark: no clock, no I/O, no randomness.

Percentiles use linear interpolation between closest ranks (numpy's default, Hyndman & Fan
type 7), so a p95 of few samples is an interpolated value, not one of the samples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

__all__ = [
    "Op",
    "Summary",
    "interleave",
    "mean",
    "median",
    "meets",
    "paired_ratio",
    "percentile",
    "ratio",
    "spread",
    "summarize",
]

T = TypeVar("T")
Op = Literal["<=", ">="]


def _checked(xs: Sequence[float]) -> list[float]:
    if not xs:
        raise ValueError("no samples")
    values = [float(x) for x in xs]
    if any(math.isnan(x) for x in values):
        raise ValueError("NaN sample")
    return values


def percentile(xs: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``xs``, interpolating between closest ranks."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    values = sorted(_checked(xs))
    pos = (len(values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def median(xs: Sequence[float]) -> float:
    """The middle value (mean of the two middle ones for an even count)."""
    return percentile(xs, 50.0)


def mean(xs: Sequence[float]) -> float:
    values = _checked(xs)
    return math.fsum(values) / len(values)


def ratio(a: float, b: float) -> float:
    """``a / b``; ``b`` must be positive (a zero baseline means the measurement failed)."""
    if not b > 0.0:
        raise ValueError(f"ratio baseline must be positive, got {b}")
    return a / b


def paired_ratio(xs: Sequence[float], base: Sequence[float]) -> float:
    """The median of ``xs[i] / base[i]``: samples taken side by side (in one round of an
    interleaved run) compared pair by pair, so that a drift of the machine slower than a round
    cancels in each pair instead of spreading both contenders' samples alike."""
    if len(xs) != len(base):
        raise ValueError(f"paired samples differ in number: {len(xs)} and {len(base)}")
    return median([ratio(a, b) for a, b in zip(_checked(xs), _checked(base), strict=True)])


def meets(value: float, goal: float, op: Op) -> bool:
    """Whether ``value`` meets ``goal`` under ``op`` ("<=": at most, ">=": at least)."""
    if op == "<=":
        return value <= goal
    if op == ">=":
        return value >= goal
    raise ValueError(f"unknown comparison {op!r}")


@dataclass(frozen=True)
class Summary:
    """Order statistics of one contender's samples (same unit as the samples)."""

    n: int
    median: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float


def summarize(xs: Sequence[float]) -> Summary:
    values = _checked(xs)
    return Summary(
        n=len(values),
        median=median(values),
        p95=percentile(values, 95.0),
        p99=percentile(values, 99.0),
        mean=mean(values),
        min=min(values),
        max=max(values),
    )


def interleave(contenders: Sequence[T], rounds: int) -> list[T]:
    """Run order for equal repetitions: one block of each contender per round.

    The order rotates every round (A B, B A, A B, ... for two), so that slow drift of the
    machine and "who ran just before me" effects fall on every contender alike.
    """
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    k = len(contenders)
    order: list[T] = []
    for r in range(rounds):
        shift = r % k if k else 0
        order.extend(contenders[shift:])
        order.extend(contenders[:shift])
    return order


def spread(counts: Mapping[T, int]) -> list[T]:
    """Run order for unequal repetitions, each contender spread evenly over the whole run.

    Smooth weighted round-robin: {A: 4, B: 2} gives A B A A B A, so the few slow runs of a
    sequential peer are interleaved with the many fast ones instead of all at one end.
    Ties go to the contender listed first.
    """
    if any(c < 0 for c in counts.values()):
        raise ValueError("counts must be >= 0")
    total = sum(counts.values())
    current = dict.fromkeys(counts, 0)
    order: list[T] = []
    for _ in range(total):
        for key, weight in counts.items():
            current[key] += weight
        best = max(current, key=lambda key: current[key])  # first maximum wins ties
        current[best] -= total
        order.append(best)
    return order
