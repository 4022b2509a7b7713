"""The chaos suite's bounded run (``make test``): thread and asyncio workers of every role
under a seeded fault schedule, on the session's PostgreSQL 1+2 and MariaDB 1+1 clusters.

The seed is printed (``chaos: seed N``); ``CHAOS_SEED=N`` replays a run's schedule, and
``CHAOS_SECONDS`` changes its length. Every invariant of
:mod:`clusterdb.testing.chaos.invariants` is asserted as it is; the time budget (a 2-core
machine shared with other work) is in the length of the run, never in a looser invariant.
"""

from __future__ import annotations

import os
import random

import pytest

from clusterdb.testing.chaos import ChaosConfig, ChaosResult, run_chaos, summary
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

# Memory growth between warm-up and the end of a ~30 s run: measured at 0.2-0.6 MiB of Python
# allocations (tracemalloc); the bound is ten times clear of that. A leak of one connection
# per operation (~2,000 operations, several KiB each) would cross it.
_TRACED_GROWTH_BOUND = 8 * 2**20


def _config() -> ChaosConfig:
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**9))
    return ChaosConfig(seed=seed, duration=float(os.environ.get("CHAOS_SECONDS", "18")))


def _check(result: ChaosResult) -> None:
    report = summary([result], title=f"chaos seed {result.config.seed}")
    print(report)
    assert len(result.applied) >= 5, report  # the schedule did something
    assert sum(1 for op in result.ops if op.acked) >= 20, report  # and so did the writers
    for kind, found in result.violations.items():
        assert not found, f"{kind} (seed {result.config.seed}):\n" + "\n".join(found[:20])
    assert not result.harness_errors, result.harness_errors
    for kind, left in result.leaks.items():
        assert not left, f"{kind}: {left} (seed {result.config.seed})"
    assert result.memory.traced_growth < _TRACED_GROWTH_BOUND, report


@pytest.mark.chaos
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_chaos_postgres(pg_cluster: PostgresCluster) -> None:
    _check(run_chaos(pg_cluster, _config()))


@pytest.mark.chaos
@pytest.mark.mariadb
@pytest.mark.timeout(240)
def test_chaos_mariadb(mariadb_cluster: MariaDBCluster) -> None:
    _check(run_chaos(mariadb_cluster, _config()))
