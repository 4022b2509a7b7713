"""Run every scenario against clusters of our own, print the table, write the results.

The clusters (PostgreSQL 1+2, MariaDB 1+2: scenario 3 needs three nodes of each) come from
:mod:`clusterdb.testing` on free loopback ports, never 5432/3306, run by a child process
(:mod:`bench.clusterhost`, so that their proxies do not share our GIL), and are stopped on the
way out whatever happens, Ctrl-C included. A scenario that fails is recorded with its error and
the run goes on; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import clusterdb
from bench import peers
from bench.async_connect import run_async_connect
from bench.causal import run_causal
from bench.clusterhost import HostGone, start_clusters
from bench.common import FULL, QUICK, Ctx, log
from bench.connect import run_healthy_connect
from bench.fleet import run_fleet
from bench.galera import run_galera
from bench.hung import run_hung
from bench.idle import IdleControl, cpuidle_driver
from bench.machine import load_average, machine_info
from bench.model import ScenarioResult
from bench.pooled import run_pooled
from bench.query import run_per_query
from bench.report import render_markdown, write_results
from bench.routed import run_routed
from bench.routing import run_routing
from bench.scale import run_scale, run_selection

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest"
DEV_RESULTS = Path(os.environ.get("TMPDIR", "/tmp")) / "clusterdb-bench-dev"
SCENARIOS = (
    "query",
    "connect",
    "hung",
    "routing",
    "scale",
    "selection",
    "pooled",
    "async",
    "galera",
    "causal",
    "fleet",
)
DRIVERS = ("psycopg", "pymysql")

Step = tuple[str, str, Callable[[Ctx], ScenarioResult]]


def _bind(fn: Callable[[Ctx, str], ScenarioResult], driver: str) -> Callable[[Ctx], ScenarioResult]:
    def step(ctx: Ctx) -> ScenarioResult:
        return fn(ctx, driver)

    return step


def _cpus_sleep(driver: str) -> Callable[[Ctx], ScenarioResult]:
    """Scenario 2 again with the CPU-latency request released, when the run holds one."""

    def step(ctx: Ctx) -> ScenarioResult:
        ctx.idle.release()
        try:
            return run_healthy_connect(ctx, driver, cpus_sleep=True)
        finally:
            ctx.idle.hold()

    return step


def _steps(only: Sequence[str], drivers: Sequence[str], sleep_variant: bool) -> list[Step]:
    """(scenario, title, function) in run order; each driver-specific scenario per driver."""
    per_driver: dict[str, Callable[[Ctx, str], ScenarioResult]] = {
        "query": run_per_query,
        "connect": run_healthy_connect,
        "hung": run_hung,
        "routing": run_routing,
        "pooled": run_pooled,
        "async": run_async_connect,
        "causal": run_causal,
    }
    steps: list[Step] = []
    for key in SCENARIOS:
        if key not in only:
            continue
        if key in per_driver:
            fn = per_driver[key]
            steps += [(key, f"{key} {d}", _bind(fn, d)) for d in drivers]
            if key == "routing":
                steps += [(key, f"routed {d}", _bind(run_routed, d)) for d in drivers]
            if key == "connect" and sleep_variant:
                steps += [(key, f"connect {d}, CPUs may sleep", _cpus_sleep(d)) for d in drivers]
        elif key == "scale":
            steps.append((key, "scale psycopg", lambda ctx: run_scale(ctx, "psycopg")))
        elif key == "galera":  # its own servers (GaleraCluster), PyMySQL only
            if "pymysql" in drivers:
                steps.append((key, "galera pymysql", run_galera))
        elif key == "fleet":
            steps.append((key, "fleet psycopg", run_fleet))
        else:
            steps.append((key, key, run_selection))
    return steps


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="clusterdb against the vendor drivers and libpq multi-host (issue 5).",
    )
    p.add_argument("--quick", action="store_true", help="few repetitions, for development")
    p.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios among {','.join(SCENARIOS)} (default: all)",
    )
    p.add_argument("--drivers", default=",".join(DRIVERS), help="comma-separated: psycopg,pymysql")
    p.add_argument(
        "--cpus-may-sleep",
        action="store_true",
        help="do not hold /dev/cpu_dma_latency at 0 during the run (see bench/idle.py)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results path prefix (default: {RESULTS.relative_to(ROOT)} for a full run of "
        f"everything, else {DEV_RESULTS})",
    )
    args = p.parse_args(argv)
    args.only = [s for s in args.only.split(",") if s]
    args.drivers = [d for d in args.drivers.split(",") if d]
    for s in args.only:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}")
    for d in args.drivers:
        if d not in DRIVERS:
            p.error(f"unknown driver {d!r}")
    return args


def _command(argv: Sequence[str]) -> str:
    cmd = " ".join([".venv/bin/python bench/run.py", *map(shlex.quote, argv)])
    # MAKELEVEL is set in commands run by make.
    return f"make bench ({cmd})" if os.environ.get("MAKELEVEL") and not argv else cmd


def _run_steps(ctx: Ctx, steps: list[Step]) -> list[ScenarioResult]:
    results: list[ScenarioResult] = []
    for key, title, fn in steps:
        load = load_average()[0]
        log(f"--- {title} (load average {load:.2f})")
        t0 = time.monotonic()
        try:
            result = fn(ctx)
        except HostGone:
            raise
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            result = ScenarioResult(key=key, title=title, error=f"{type(exc).__name__}: {exc}")
        # Whatever a scenario did to the proxies, the next one starts healthy.
        ctx.reset_proxies()
        ctx.unregister_all()
        result.seconds = time.monotonic() - t0
        result.load = load
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parse(argv)
    counts = QUICK if args.quick else FULL
    complete = not args.quick and set(args.only) == set(SCENARIOS) and args.drivers == list(DRIVERS)
    out: Path = args.out or (RESULTS if complete else DEV_RESULTS)

    machine = machine_info()
    machine["load_start"] = load_average()
    if machine["load_start"][0] >= 1.0:
        log(f"machine busy: load average {machine['load_start'][0]:.2f}; figures will be noisy")
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    t0 = time.monotonic()
    own_servers = {"selection", "galera", "fleet"}
    needs = {d for d in args.drivers} if set(args.only) - own_servers else set()
    if "scale" in args.only or "fleet" in args.only:
        needs.add("psycopg")

    idle = IdleControl(wanted=not args.cpus_may_sleep)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(idle)
            machine["cpu_idle"] = {"driver": cpuidle_driver(), "latency_request": idle.status}
            log(f"CPU idle: {idle.status}")
            steps = _steps(args.only, args.drivers, sleep_variant=idle.held)
            drivers = [d for d in DRIVERS if d in needs]
            log(f"starting clusters for {', '.join(drivers) or 'nothing'} (1 primary + 2 replicas)")
            clusters = stack.enter_context(start_clusters(drivers)).clusters
            if "psycopg" in clusters:
                machine["postgres"] = " ".join(clusters["psycopg"].version.split()[:2])
            if "pymysql" in clusters:
                machine["mariadb"] = f"MariaDB {clusters['pymysql'].version.split('-')[0]}"
            ctx = Ctx(counts=counts, clusters=clusters, aws=peers.aws_available(), idle=idle)
            stack.callback(peers.aws_release)
            stack.callback(clusterdb.close)
            stack.callback(ctx.unregister_all)
            log(f"clusters up in {time.monotonic() - t0:.1f} s")
            results = _run_steps(ctx, steps)
    except KeyboardInterrupt:
        log("interrupted: clusters stopped, no results written")
        return 130
    except HostGone as exc:
        log(f"{exc}: no results written")
        return 1
    seconds = time.monotonic() - t0
    machine["load_end"] = load_average()

    command = _command(argv)
    markdown = render_markdown(
        command=command,
        started=started,
        seconds=seconds,
        machine=machine,
        results=results,
        quick=args.quick,
    )
    goals = [g for r in results for g in r.goals]
    payload: dict[str, Any] = {
        "command": command,
        "started_at": started,
        "seconds": round(seconds, 1),
        "quick": args.quick,
        "complete": complete,
        "counts": counts.__dict__,
        "machine": machine,
        "goals_passed": sum(g.passed for g in goals),
        "goals_failed": sum(not g.passed for g in goals),
        "errors": [r.title for r in results if r.error],
        "scenarios": [r.as_dict() for r in results],
    }
    json_path, md_path = write_results(out, payload, markdown)
    print(markdown)
    log(f"wrote {json_path} and {md_path} ({seconds:.0f} s)")
    return 1 if any(r.error for r in results) else 0
