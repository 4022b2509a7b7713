"""``make soak``: the chaos suite for a long time, with a summary in ``bench/results/soak.md``.

Runs :func:`clusterdb.testing.chaos.run_chaos` on a PostgreSQL 1+2 and a MariaDB 1+1 cluster
of its own (one after the other, ``SOAK_MINUTES`` of faults in all, default 10, split evenly),
with two threads and two asyncio tasks per role, then writes the summary table: faults by kind
with recovery times, operations and failures by kind, every invariant's violations, leaks and
memory. Exit status 0 only when every invariant held and nothing was left behind.

Environment: ``SOAK_MINUTES`` (float), ``SOAK_SEED`` (replay a run: the same seed gives the
same schedules), ``SOAK_SERVERS`` (``postgres,mariadb``), ``SOAK_OUT`` (the summary's path).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ itself first on sys.path (see bench/run.py).
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.machine import load_average  # noqa: E402
from clusterdb.testing.chaos import ChaosConfig, ChaosResult, run_chaos, summary  # noqa: E402
from clusterdb.testing.cluster import Cluster  # noqa: E402
from clusterdb.testing.mariadb import MariaDBCluster  # noqa: E402
from clusterdb.testing.postgres import PostgresCluster  # noqa: E402


def _postgres() -> Cluster:
    return PostgresCluster(replicas=2)


def _mariadb() -> Cluster:
    return MariaDBCluster(replicas=1)


SERVERS: dict[str, Callable[[], Cluster]] = {"postgres": _postgres, "mariadb": _mariadb}


def _env_float(key: str, default: float) -> float:
    raw = os.environ.get(key)
    return float(raw) if raw else default


def main() -> int:
    minutes = _env_float("SOAK_MINUTES", 10.0)
    seed = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(10**9))
    servers = [s.strip() for s in os.environ.get("SOAK_SERVERS", "postgres,mariadb").split(",")]
    out = Path(os.environ.get("SOAK_OUT", ROOT / "bench" / "results" / "soak.md"))
    unknown = [s for s in servers if s not in SERVERS]
    if unknown or not servers:
        print(f"soak: SOAK_SERVERS must name some of {', '.join(SERVERS)}", file=sys.stderr)
        return 2
    per = minutes * 60.0 / len(servers)
    began, load_start = datetime.now(UTC), load_average()
    results: list[ChaosResult] = []
    started = time.monotonic()
    for server in servers:
        harness: Cluster = SERVERS[server]()
        with harness:
            config = ChaosConfig(seed=seed, duration=per, threads_per_role=2, tasks_per_role=2)
            results.append(run_chaos(harness, config))
    elapsed = time.monotonic() - started
    head = (
        f"Run {began:%Y-%m-%d %H:%M} UTC for {elapsed / 60:.1f} min ({minutes:g} min of faults,"
        f" seed {seed}: `SOAK_SEED={seed} SOAK_MINUTES={minutes:g} make soak` replays it); "
        f"load average {load_start} at start, {load_average()} at the end."
    )
    text = summary(results, title="Soak: the chaos suite for a long run").replace(
        "\n\n", f"\n\n{head}\n\n", 1
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"soak: summary written to {out}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
