"""What a scenario produces: measured series, goals checked against them, notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.stats import Op, Summary, meets, summarize

__all__ = ["Goal", "ScenarioResult", "Series"]


@dataclass
class Series:
    """One contender's samples in one scenario (``unit``: "ms", "us", ...)."""

    contender: str
    unit: str
    samples: list[float]
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    """Figures that are not per-sample, e.g. throughput."""

    @property
    def summary(self) -> Summary:
        return summarize(self.samples)

    def as_dict(self) -> dict[str, Any]:
        s = self.summary
        return {
            "contender": self.contender,
            "unit": self.unit,
            "n": s.n,
            "median": s.median,
            "p95": s.p95,
            "p99": s.p99,
            "mean": s.mean,
            "min": s.min,
            "max": s.max,
            "note": self.note,
            **self.extra,
        }


@dataclass(frozen=True)
class Goal:
    """A figure checked against the issue's goal: ``value op target``."""

    what: str
    value: float
    target: float
    op: Op
    unit: str = "x"

    @property
    def passed(self) -> bool:
        return meets(self.value, self.target, self.op)

    def as_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "value": self.value,
            "target": self.target,
            "op": self.op,
            "unit": self.unit,
            "passed": self.passed,
        }


@dataclass
class ScenarioResult:
    """Everything one scenario measured, or the error that stopped it."""

    key: str
    title: str
    path: str = ""
    """Which ports were used: "direct" server ports or the harness "proxy" ports."""
    settings: dict[str, Any] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    load: float = 0.0
    """The 1-minute load average when the scenario started."""

    def add(
        self,
        contender: str,
        unit: str,
        samples: Sequence[float],
        note: str = "",
        **extra: float,
    ) -> Series:
        series = Series(contender, unit, list(samples), note, dict(extra))
        self.series.append(series)
        return series

    def get(self, contender: str) -> Series:
        for series in self.series:
            if series.contender == contender:
                return series
        raise KeyError(contender)

    def goal(self, what: str, value: float, target: float, op: Op, unit: str = "x") -> Goal:
        goal = Goal(what, value, target, op, unit)
        self.goals.append(goal)
        return goal

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "path": self.path,
            "settings": self.settings,
            "series": [s.as_dict() for s in self.series if s.samples],
            "goals": [g.as_dict() for g in self.goals],
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "load_1m_at_start": self.load,
        }
