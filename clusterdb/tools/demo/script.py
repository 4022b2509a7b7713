"""The demo's story: five steps, each an action on the harness cluster and a watch of its effect."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusterdb.tools import report
from clusterdb.tools.demo.screen import LogTap, Screen
from clusterdb.tools.demo.workload import ROLES, STALL_S, Tally

if TYPE_CHECKING:
    from clusterdb.testing import Cluster, TestNode

__all__ = ["Pace", "Stage", "Step", "conclude", "play", "steps", "topology", "verdict"]


@dataclass(frozen=True)
class Pace:
    """How long a step lasts and the timeouts that make sense at that pace (seconds)."""

    step_s: float
    timeout: float
    heartbeat: float

    @classmethod
    def of(cls, fast: bool) -> Pace:
        return cls(2.5, 1.0, 0.5) if fast else cls(6.0, 2.0, 1.0)


@dataclass(frozen=True)
class Stage:
    """What every step shows on and counts into."""

    screen: Screen
    tally: Tally
    tap: LogTap
    step_s: float


@dataclass(frozen=True)
class Step:
    title: str
    explain: str
    action: Callable[[], object] | None = None


def steps(cluster: Cluster) -> list[Step]:
    """The five steps: steady state, a hung replica, primary killed, promote, bring back."""
    primary = cluster.primary
    hung, promoted = cluster.replicas[-1], cluster.replicas[0]
    return [
        Step(
            "1. steady state",
            "three threads connect ~10 times a second: role='primary', 'prefer-replica', 'any'."
            " Each connect asks the server its name.",
        ),
        Step(
            f"2. {hung.name} hangs (accepts TCP, never answers)",
            "connect() hedges: after a short learned delay it tries the next node, so no connect "
            "waits for the timeout; the hung node's latency estimate jumps and it stops being "
            "picked. A query already sent to it fails at query_timeout (the driver's own "
            "error) and the node is marked down: that call is counted as failed and stalled.",
            hung.hang,
        ),
        Step(
            f"3. the primary {primary.name} is killed",
            "reads keep succeeding on the replicas; role='primary' has nowhere to go and fails "
            "fast (AllNodesFailed / NoSuitableNode) until a replica is promoted.",
            primary.kill,
        ),
        Step(
            f"4. {promoted.name} is promoted to primary ({hung.name} wakes up and follows it)",
            "the monitor reads each node's role at every heartbeat: role='primary' follows the "
            "new primary within about a heartbeat plus a connect, and the woken node is probed "
            "back into rotation.",
            lambda: cluster.promote(promoted),
        ),
        Step(
            f"5. {primary.name} comes back, as a replica of {promoted.name}",
            "the monitor probes down nodes with backoff: once it answers it is back in "
            "rotation, now serving reads.",
            lambda: _bring_back(primary, hung),
        ),
    ]


def play(stage: Stage, step: Step) -> None:
    """Narrate ``step``, do its action, watch for ``stage.step_s``, then sum the step up."""
    screen, tally = stage.screen, stage.tally
    screen.say("")
    screen.say(f"== {step.title}")
    screen.say(f"   {step.explain}")
    # Count from here: what the action itself disturbs belongs to this step.
    tally.new_step()
    if step.action is not None:
        try:
            step.action()
        except Exception as exc:  # keep narrating: the demo shows, it does not test
            screen.say(f"   (could not do that: {type(exc).__name__}: {exc})")
    _watch(stage)
    # On a terminal the last live block stays as this step's picture.
    screen.keep_live()
    if not screen.tty:
        screen.say(screen.stats_table())
    screen.say(f"   slowest connect() per role: {tally.slowest_line() or '-'}")
    screen.say(f"   calls (connect and query) of {STALL_S:g} s or more: {tally.stalls_line()}")
    for role, error in tally.first_errors().items():
        screen.say(f"   first failure for role={role}: {report.truncate_middle(error, 200)}")


def conclude(screen: Screen, tally: Tally, cluster: Cluster) -> None:
    """The closing lines: the final topology, what each role's calls did over the whole run,
    and a verdict made of those counts alone (:func:`verdict`)."""
    screen.say("")
    screen.say("== done: " + topology(cluster))
    with tally.lock:
        ok, failed = dict(tally.total_ok), dict(tally.total_failed)
        stalled, longest = dict(tally.total_stalled), dict(tally.total_longest)
    for role in ROLES:
        screen.say(
            f"   role={role}: {ok.get(role, 0)} calls succeeded, {failed.get(role, 0)} failed, "
            f"{stalled.get(role, 0)} stalled (took {STALL_S:g} s or more; longest "
            f"{longest.get(role, 0.0):.2f} s)"
        )
    screen.say("   " + verdict(failed, stalled))


READERS = ("any", "prefer-replica")


def verdict(failed: Mapping[str, int], stalled: Mapping[str, int]) -> str:
    """The closing sentence, from the counts alone: the readers "kept succeeding" only when
    none of their calls failed or stalled; otherwise each role's failures and stalls."""

    def bad(role: str) -> str:
        return f"'{role}' {failed.get(role, 0)} failed, {stalled.get(role, 0)} stalled"

    troubled = [r for r in READERS if failed.get(r, 0) or stalled.get(r, 0)]
    if troubled:
        readers = "not every read went smoothly: " + "; ".join(map(bad, troubled))
    else:
        readers = "'any' and 'prefer-replica' kept succeeding through every step, no call stalled"
    if failed.get("primary", 0) or stalled.get("primary", 0):
        return f"{readers}; {bad('primary')}."
    return f"{readers}; 'primary' never failed or stalled."


def topology(cluster: Cluster) -> str:
    with contextlib.suppress(Exception):
        replicas = ", ".join(n.name for n in cluster.replicas)
        return f"primary {cluster.primary.name}, replicas {replicas}"
    return "topology unknown"


def _bring_back(old_primary: TestNode, hung: TestNode) -> None:
    # promote() already woke the hung replica; resume again in case the promote step failed.
    if hung.hung:
        hung.resume()
    # After promote() the harness set the old primary up to start as a replica of the new
    # one: starting it is all "bringing it back" takes (heal() would rebuild the old shape).
    old_primary.start()


def _watch(stage: Stage) -> None:
    """Show the live line once a second for ``stage.step_s``, with fresh log lines above it."""
    began = time.monotonic()
    seen = len(stage.tap.lines)
    while True:
        time.sleep(min(1.0, max(0.0, began + stage.step_s - time.monotonic())))
        elapsed = time.monotonic() - began
        lines = list(stage.tap.lines)
        fresh = lines[seen:]
        seen = len(lines)
        stage.screen.tick(elapsed, stage.tally, fresh)
        if elapsed >= stage.step_s - 0.05:
            return
