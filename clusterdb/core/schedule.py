"""When to probe a node next: a pure function of what the last probe found.

A healthy node is probed once per heartbeat (round-trip time, role, lag). A node that failed is
probed on a capped exponential backoff with jitter, short enough that a recovered node is back
in rotation within seconds (why: docs/design/probe-schedule.md).

A probe due on a healthy node is skipped when the process's own connects observed the node
(up, its role read) within the last heartbeat (:meth:`ProbeSchedule.deferred`): it would learn
nothing new, and in a fleet of busy processes such probes are most of the servers' probe load.
So a busy process probes only the nodes it does not use, and an idle one each node once per
heartbeat (a probe opens a connection and closes it: none is kept).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from clusterdb.core.policies import Backoff

__all__ = ["ProbeSchedule"]


@dataclass(frozen=True)
class ProbeSchedule:
    """One node's probe timetable: when it is due and how many probes failed in a row."""

    due_at: float
    failures: int = 0
    required: bool = field(default=False, compare=False)
    """The probe must run even if a connect observed the node (the first one; a check asked
    for: a sign that roles changed)."""

    @classmethod
    def first(cls, now: float) -> ProbeSchedule:
        """A node the monitor has not probed yet is due at once (role and lag are unknown)."""
        return cls(due_at=now, required=True)

    def deferred(
        self, now: float, heartbeat: float, observed_at: float | None
    ) -> ProbeSchedule | None:
        """At the due time: None when the probe must run, else the schedule to keep instead.

        The probe is skipped when the node's last observation by this process's connects
        (``observed_at``, monotonic; None when there is none, or when a connect cannot see
        what the probe reads, such as a replica's lag) is less than a ``heartbeat`` old and
        the node is on the healthy schedule (no failures, no check asked for): the next probe
        is then due a heartbeat after that observation. Formula: skip iff ``failures == 0``,
        not ``required`` and ``now - observed_at < heartbeat``; due ``observed_at +
        heartbeat``.
        """
        if self.failures or self.required or observed_at is None:
            return None
        if now - observed_at >= heartbeat:
            return None
        return ProbeSchedule(due_at=observed_at + heartbeat)

    def after_success(self, now: float, heartbeat: float) -> ProbeSchedule:
        return ProbeSchedule(due_at=now + heartbeat, failures=0)

    def after_failure(self, now: float, backoff: Backoff, rng: random.Random) -> ProbeSchedule:
        failures = self.failures + 1
        return ProbeSchedule(due_at=now + backoff.delay(failures, rng), failures=failures)

    def no_later_than(self, at: float) -> ProbeSchedule:
        """Due at ``at`` at the latest (a check was asked for); the failure count is kept."""
        if self.due_at <= at and (self.required or self.failures):
            return self
        return ProbeSchedule(due_at=min(self.due_at, at), failures=self.failures, required=True)

    def after_outside_failure(
        self, now: float, backoff: Backoff, rng: random.Random
    ) -> ProbeSchedule:
        """A connect() found the node down: probe it on the backoff, not a heartbeat away."""
        if self.failures > 0:
            return self  # already on the backoff schedule
        return self.after_failure(now, backoff, rng)
