"""One chaos run: workers under a fault schedule on a harness cluster, then the verdict.

``run_chaos(harness, ChaosConfig(seed=...))`` prints its seed first (replay a failure with the
same seed), registers a clusterdb cluster over the harness's proxies with a short heartbeat,
runs thread and asyncio workers for every role while :class:`FaultRunner` plays the schedule,
keeps the workers going for a quiet ``tail`` (longer than the grace window, so a node that
stayed broken shows as failed connects), then stops everything and judges: the invariants of
:mod:`~clusterdb.testing.chaos.invariants`, and what was left behind
(:mod:`~clusterdb.testing.chaos.leaks`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import clusterdb
from clusterdb.runtime import process
from clusterdb.testing.chaos import invariants as inv
from clusterdb.testing.chaos.faults import Applied, FaultRunner
from clusterdb.testing.chaos.leaks import (
    Baseline,
    Memory,
    leftover_sessions,
    new_threads,
    sockets,
)
from clusterdb.testing.chaos.schedule import FAULT_KINDS, Fault, FaultKind, make_schedule
from clusterdb.testing.chaos.workload import Workload
from clusterdb.testing.cluster import Cluster

__all__ = ["ChaosConfig", "ChaosResult", "run_chaos"]


@dataclass(frozen=True)
class ChaosConfig:
    """A run's shape. ``duration``: seconds of faults; ``tail``: quiet seconds after them."""

    seed: int
    duration: float = 20.0
    tail: float = 0.0  # 0: the grace window plus two seconds
    kinds: Sequence[FaultKind] = FAULT_KINDS
    concurrency: int = 2
    threads_per_role: int = 1
    tasks_per_role: int = 1
    pace: float = 0.05
    heartbeat: float = 1.0
    connect_timeout: float = 4.0
    """Generous: 8 MariaDB connects at once took 1.3 s each with the machine at load 12."""


@dataclass
class ChaosResult:
    """Everything a run saw; :attr:`violations` is empty when every invariant held."""

    config: ChaosConfig
    driver: str
    schedule: tuple[Fault, ...]
    applied: list[Applied]
    ops: list[inv.Op]
    grace: float
    elapsed: float
    violations: dict[str, list[str]] = field(default_factory=dict)
    leaks: dict[str, object] = field(default_factory=dict)
    harness_errors: list[str] = field(default_factory=list)
    memory: Memory = field(default_factory=Memory)
    timeline: inv.Timeline | None = None

    @property
    def ok(self) -> bool:
        return (
            not any(self.violations.values())
            and not self.harness_errors
            and not any(bool(v) for v in self.leaks.values())
        )


def _grace(config: ChaosConfig, name: str) -> float:
    options = process.get(name).options
    return inv.grace_window(
        options.heartbeat, options.connect_timeout, options.backoff.cap, options.backoff.jitter
    )


def run_chaos(
    harness: Cluster, config: ChaosConfig, log: Callable[[str], None] = print
) -> ChaosResult:
    """Run ``config`` on the started ``harness``; faults end and the workers stop before it
    returns. The harness is left as the schedule left it (``heal()`` afterwards)."""
    log(f"chaos: seed {config.seed} ({harness.driver}, {config.duration:.0f} s of faults)")
    schedule = make_schedule(
        config.seed,
        len(harness.nodes),
        config.duration,
        kinds=config.kinds,
        concurrency=config.concurrency,
    )
    table = f"chaos_{uuid.uuid4().hex[:10]}"
    harness.execute(
        harness.primary, f"CREATE TABLE {table} (id VARCHAR(64) PRIMARY KEY)", admin=False
    )
    harness.wait_caught_up(timeout=30.0)
    memory = Memory()
    memory.start()
    baseline = Baseline.take()
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    # PyMySQL builds an SSL context for every connect unless told not to (its "preferred"
    # TLS): ~110 ms of CPU under the GIL each, which at 8 workers is the whole budget.
    tls = {"ssl_disabled": True} if harness.driver == "pymysql" else {}
    clusterdb.register(
        name,
        **harness.register_kwargs(),
        **tls,
        heartbeat=config.heartbeat,
        connect_timeout=config.connect_timeout,
    )
    clock = time.monotonic
    grace = _grace(config, name)
    tail = config.tail or grace + 2.0
    workload = Workload(name, harness.driver, table, clock, pace=config.pace)
    t0 = clock()
    runner = FaultRunner(harness, schedule, clock, t0, log)
    stop = threading.Event()
    workload.start(config.threads_per_role, config.tasks_per_role)
    marker = threading.Timer(min(config.duration / 4, 10.0), memory.mark)
    marker.start()
    try:
        runner.run(stop)
        stop.wait(max(0.0, t0 + config.duration + tail - clock()))
    finally:
        stop.set()
        marker.join()
        stuck = workload.stop(timeout=60.0)
    elapsed = clock() - t0
    result = ChaosResult(
        config,
        harness.driver,
        schedule,
        runner.applied,
        list(workload.ops),
        grace,
        elapsed,
        harness_errors=runner.errors,
        memory=memory,
        timeline=runner.timeline,
    )
    try:
        _judge(result, harness, name, table, runner)
        result.leaks["workers still running"] = stuck
        result.leaks["asyncio tasks left"] = workload.leftover_tasks
        _leaks(result, harness, name, baseline)
    finally:
        with contextlib.suppress(clusterdb.UnknownClusterError):
            clusterdb.unregister(name)
        with contextlib.suppress(Exception):
            harness.execute(harness.primary, f"DROP TABLE IF EXISTS {table}", admin=False)
    return result


def _judge(
    result: ChaosResult, harness: Cluster, name: str, table: str, runner: FaultRunner
) -> None:
    ops = result.ops
    timeline = runner.timeline
    result.violations["failed connect while a fitting node was up"] = inv.failed_while_up(
        ops, timeline, result.grace
    )
    result.violations["wrong role"] = inv.wrong_roles(ops, timeline)
    present = [r[0] for r in harness.execute(harness.primary, f"SELECT id FROM {table}")]
    acked = [op.acked for op in ops if op.acked is not None]
    result.violations["acknowledged write lost"] = inv.lost_writes(acked, present)
    # Late attempts record their outcome when they end: wait for none to be pending.
    deadline = time.monotonic() + 20.0
    snap = clusterdb.stats.snapshot(name)
    while any(n.pending for n in snap.nodes) and time.monotonic() < deadline:
        time.sleep(0.05)
        snap = clusterdb.stats.snapshot(name)
    result.violations["stats disagree with the workers"] = inv.stats_mismatches(
        ops, snap.connects, snap.failures
    )


def _leaks(result: ChaosResult, harness: Cluster, name: str, baseline: Baseline) -> None:
    clusterdb.unregister(name)
    process.pool().wait(10.0)
    result.memory.end()
    result.leaks["threads left"] = new_threads(baseline)
    result.leaks["server sessions left"] = leftover_sessions(harness)
    # The proxies (in this process) close their side once they see the client's close.
    deadline = time.monotonic() + 10.0
    while sockets() > baseline.sockets and time.monotonic() < deadline:
        time.sleep(0.1)
    result.leaks["sockets left"] = max(0, sockets() - baseline.sockets)
