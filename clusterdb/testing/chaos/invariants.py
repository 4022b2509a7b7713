"""The chaos invariants, judged after a run from what the fault runner and the workers recorded.

Pure: records in, violations out (unit-tested with hand-made timelines).

* **Up.** A node is *up* over ``[s, e]`` when no disruption of it (a kill, hang, restart,
  deaf or refusing proxy, or a promote/switchover it took part in, each from the moment the
  harness began it until the moment it returned) overlaps ``[s - grace, e]``. The grace window
  is what clusterdb needs to see a node back or a role change: a probe in flight when the node
  came back (or changed role) ends within ``connect_timeout`` with the old news; the next one
  is due at most a heartbeat (a backoff delay, for a node seen down) later; it then takes one
  successful connect, which ``slack`` bounds (2 s: a MariaDB connect took 0.25 s alone and
  1.3 s eight at once with the machine at load 12 on 2 cores). So ``grace = connect_timeout +
  max(heartbeat, backoff cap * (1 + jitter)) + slack`` (:func:`grace_window`).
* **No failed connect while a node fitting the role is up**: a ``connect(role=R)`` that
  raised over ``[s, e]`` is a violation when some node whose harness role fits ``R`` was up
  over ``[s, e]`` (its role cannot have changed: a role change is a disruption).
* **Never a wrong role**: a connection returned for ``primary`` (``replica``) whose server said,
  when asked on that connection right after connect, that it is a replica (the primary), is a
  violation unless that node took part in a promote or switchover between the start of the
  connect and that answer (the legitimate race: demoted after connect).
* **No acknowledged write lost**: every id whose INSERT's commit returned is on the final
  primary.
* **Stats agree with the workers**: clusterdb's connects and failures equal the workers'
  successful and failed connects.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Disruption",
    "Op",
    "Timeline",
    "failed_while_up",
    "grace_window",
    "lost_writes",
    "stats_mismatches",
    "wrong_roles",
]

Wanted = Literal["any", "primary", "replica", "prefer-replica"]
ServerRole = Literal["primary", "replica"]


def grace_window(
    heartbeat: float, connect_timeout: float, backoff_cap: float, jitter: float, slack: float = 2.0
) -> float:
    """Seconds after a disruption ends before its node counts as up again (see the module)."""
    return connect_timeout + max(heartbeat, backoff_cap * (1.0 + jitter)) + slack


@dataclass(frozen=True)
class Disruption:
    """``node`` unusable (or its role in doubt, ``topology``) from ``start`` to ``end``."""

    node: str
    kind: str
    start: float
    end: float = math.inf
    topology: bool = False

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and start <= self.end


@dataclass(frozen=True)
class Op:
    """One worker operation: a connect for ``wanted`` from ``start`` to ``connected`` (or to
    ``end`` when it raised ``connect_error``), the server's own answer about its role
    (``server_role`` at ``checked_at``), the node clusterdb named, and the id written."""

    worker: str
    wanted: Wanted
    start: float
    end: float
    connect_error: str | None = None
    node: str | None = None
    server_role: ServerRole | None = None
    checked_at: float | None = None
    query_error: str | None = None
    acked: str | None = None
    detail: str = ""
    """The error's message (connect or query), for the report."""


@dataclass
class Timeline:
    """The harness's own knowledge: each node's role over time and its disruptions."""

    roles: dict[str, list[tuple[float, ServerRole]]]
    disruptions: list[Disruption]

    @classmethod
    def start(cls, roles: dict[str, ServerRole], at: float) -> Timeline:
        return cls(roles={n: [(at, r)] for n, r in roles.items()}, disruptions=[])

    def role_at(self, node: str, t: float) -> ServerRole:
        history = self.roles[node]
        current = history[0][1]
        for since, role in history:
            if since <= t:
                current = role
        return current

    def up(self, node: str, start: float, end: float, grace: float) -> bool:
        return not any(d.node == node and d.overlaps(start - grace, end) for d in self.disruptions)

    def role_changed(self, node: str, start: float, end: float) -> bool:
        return any(
            d.node == node and d.topology and d.overlaps(start, end) for d in self.disruptions
        )


def _fits(wanted: Wanted, role: ServerRole) -> bool:
    return wanted in ("any", "prefer-replica") or wanted == role


def failed_while_up(ops: Iterable[Op], timeline: Timeline, grace: float) -> list[str]:
    """A line per failed connect made while a node fitting its role was up."""
    out = []
    for op in ops:
        if op.connect_error is None:
            continue
        up = [
            n
            for n in timeline.roles
            if timeline.up(n, op.start, op.end, grace)
            and _fits(op.wanted, timeline.role_at(n, op.start))
        ]
        if up:
            out.append(
                f"{op.worker}: connect(role={op.wanted}) failed at t={op.start:.2f}-{op.end:.2f}"
                f" ({op.connect_error}: {op.detail}) while {', '.join(up)} was up"
            )
    return out


def wrong_roles(ops: Iterable[Op], timeline: Timeline) -> list[str]:
    """A line per connection of the wrong role not explained by a role change."""
    out = []
    for op in ops:
        if op.wanted not in ("primary", "replica") or op.server_role is None:
            continue
        if op.server_role == op.wanted or op.node is None or op.checked_at is None:
            continue
        if timeline.role_changed(op.node, op.start, op.checked_at):
            continue
        out.append(
            f"{op.worker}: connect(role={op.wanted}) at t={op.start:.2f} got {op.node}, which "
            f"said it is a {op.server_role} at t={op.checked_at:.2f} (no role change then)"
        )
    return out


def lost_writes(acked: Iterable[str], present: Iterable[str]) -> list[str]:
    """The acknowledged ids missing from the final primary, sorted."""
    return sorted(set(acked) - set(present))


def stats_mismatches(ops: Sequence[Op], connects: int, failures: int) -> list[str]:
    """Lines where clusterdb's connect counters disagree with the workers' records."""
    seen_ok = sum(1 for op in ops if op.connect_error is None)
    seen_failed = len(ops) - seen_ok
    out = []
    if connects != seen_ok:
        out.append(f"stats say {connects} connects, the workers saw {seen_ok}")
    if failures != seen_failed:
        out.append(f"stats say {failures} failures, the workers saw {seen_failed}")
    return out
