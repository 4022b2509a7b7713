"""The chaos suite's machinery: a seeded fault schedule, its runner on a harness cluster,
thread and asyncio workers for every role, and the invariants judged afterwards.

::

    from clusterdb.testing import PostgresCluster
    from clusterdb.testing.chaos import ChaosConfig, run_chaos, summary

    with PostgresCluster(replicas=2) as pg:
        result = run_chaos(pg, ChaosConfig(seed=1234, duration=60))
        print(summary([result]))
        assert result.ok

Used by ``tests/chaos/`` (a bounded run in ``make test``) and ``bench/soak.py``
(``make soak``).
"""

from clusterdb.testing.chaos.invariants import Disruption, Op, Timeline, grace_window
from clusterdb.testing.chaos.report import recovery_times, summary
from clusterdb.testing.chaos.run import ChaosConfig, ChaosResult, run_chaos
from clusterdb.testing.chaos.schedule import FAULT_KINDS, Fault, make_schedule

__all__ = [
    "FAULT_KINDS",
    "ChaosConfig",
    "ChaosResult",
    "Disruption",
    "Fault",
    "Op",
    "Timeline",
    "grace_window",
    "make_schedule",
    "recovery_times",
    "run_chaos",
    "summary",
]
