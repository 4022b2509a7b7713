"""When to probe a node next: a pure function of what the last probe found.

A healthy node is probed once per heartbeat (round-trip time, role, lag). A node that failed is
probed on a capped exponential backoff with jitter, short enough that a recovered node is back
in rotation within seconds (why: docs/design/probe-schedule.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from clusterdb.core.policies import Backoff

__all__ = ["ProbeSchedule"]


@dataclass(frozen=True)
class ProbeSchedule:
    """One node's probe timetable: when it is due and how many probes failed in a row."""

    due_at: float
    failures: int = 0

    @classmethod
    def first(cls, now: float) -> ProbeSchedule:
        """A node the monitor has not probed yet is due at once (role and lag are unknown)."""
        return cls(due_at=now)

    def after_success(self, now: float, heartbeat: float) -> ProbeSchedule:
        return ProbeSchedule(due_at=now + heartbeat, failures=0)

    def after_failure(self, now: float, backoff: Backoff, rng: random.Random) -> ProbeSchedule:
        failures = self.failures + 1
        return ProbeSchedule(due_at=now + backoff.delay(failures, rng), failures=failures)

    def no_later_than(self, at: float) -> ProbeSchedule:
        """Due at ``at`` at the latest (a check was asked for); the failure count is kept."""
        return self if self.due_at <= at else ProbeSchedule(due_at=at, failures=self.failures)

    def after_outside_failure(
        self, now: float, backoff: Backoff, rng: random.Random
    ) -> ProbeSchedule:
        """A connect() found the node down: probe it on the backoff, not a heartbeat away."""
        if self.failures > 0:
            return self  # already on the backoff schedule
        return self.after_failure(now, backoff, rng)
