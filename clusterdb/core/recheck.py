"""When to re-read every node's role after a sign that the topology changed: pure rate limit.

A failed or wrong-role primary attempt, or a read-only error on a primary connection, asks for
a check of every node at once, so that a promoted primary is found in about one probe round
trip instead of at the next heartbeat. Such signs come in bursts (every writer fails at the
same moment) and keep coming while no primary exists, so the requests are coalesced and
spaced: the first is served at once, later ones no sooner than ``interval`` after the last
check, the interval doubling while requests keep coming, up to ``cap``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RecheckGate", "RecheckPolicy"]


@dataclass(frozen=True)
class RecheckPolicy:
    """``first``: the interval after a check that follows a quiet spell; ``cap``: the longest
    (the most a promotion waits to be found while requests keep coming, plus a probe);
    ``quiet``: a request this long after the last check starts from ``first`` again."""

    first: float = 0.1
    cap: float = 0.5
    quiet: float = 2.0

    def __post_init__(self) -> None:
        if not (0.0 < self.first <= self.cap <= self.quiet and math.isfinite(self.quiet)):
            raise ValueError("recheck intervals must satisfy 0 < first <= cap <= quiet")


@dataclass(frozen=True)
class RecheckGate:
    """One cluster's checks: when the last (or the next, coalesced) check is due."""

    due: float = -math.inf
    """Monotonic time the latest check was (or will be) due."""
    interval: float = 0.0
    """Spacing from ``due`` to the next check."""

    def request(self, now: float, policy: RecheckPolicy) -> tuple[float, RecheckGate]:
        """A check is asked for at ``now``: when it is due, and the gate afterwards.

        A request made before the check already scheduled is due joins that check.
        """
        if now < self.due:
            return self.due, self
        if now - self.due >= policy.quiet:
            return now, RecheckGate(due=now, interval=policy.first)
        due = max(now, self.due + self.interval)
        return due, RecheckGate(due=due, interval=min(policy.cap, self.interval * 2))
