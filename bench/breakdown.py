"""Where clusterdb.connect()'s time goes, stage by stage, against the vendor connect.

Usage: ``.venv/bin/python bench/breakdown.py [psycopg|pymysql] [--n 300]``. A cluster of ONE
node (the primary, direct port), so that node choice plays no part, after a warm-up; clusterdb
and the vendor driver alternate on it. Timestamps come from wrapping the cluster's own steps,
so the stages add up to the whole call:

* ``plan``: ``Cluster.begin`` (describe the nodes and run selection, under the cluster lock);
* ``to driver``: from the plan to the driver's connect starting (in the calling thread for
  drivers that start inline, PyMySQL; in a worker thread for the others);
* ``driver connect``: the adapter's connect (``start`` for PyMySQL: TCP connect, wait for the
  greeting, PyMySQL's handshake);
* ``after driver``: role detection and the rest of the attempt before the stats;
* ``record``: ``Cluster.record_success``;
* ``back to caller``: from the stats to the calling thread resuming (the hand-over from a
  worker; only the results queue when the attempt ran inline);
* ``outcome+return``: ``Cluster.record_outcome`` and the return.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import clusterdb  # noqa: E402
from bench import peers  # noqa: E402
from bench.clusterhost import start_clusters  # noqa: E402
from bench.stats import median  # noqa: E402
from clusterdb import registry  # noqa: E402

STAGES = (
    ("plan", "begin_in", "begin_out"),
    ("to driver", "begin_out", "driver_in"),
    ("driver connect", "driver_in", "driver_out"),
    ("after driver", "driver_out", "record_in"),
    ("record", "record_in", "record_out"),
    ("back to caller", "record_out", "outcome_in"),
    ("outcome+return", "outcome_in", "end"),
)


def _wrap(obj: Any, attr: str, key: str, marks: dict[str, float]) -> None:
    inner: Callable[..., Any] = getattr(obj, attr)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        marks[f"{key}_in"] = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            marks[f"{key}_out"] = time.perf_counter()

    setattr(obj, attr, wrapper)


def breakdown(driver: str, n: int) -> None:
    with start_clusters([driver]) as host:
        cl = host.clusters[driver]
        settings = peers.driver_settings(driver)
        name = "bench-breakdown"
        clusterdb.register(
            name,
            driver=driver,
            nodes=cl.node_specs(via_proxy=False)[:1],
            user=cl.user,
            password=cl.password,
            **{cl.dbname_key: cl.dbname},
            **settings,
        )
        for _ in range(30):
            clusterdb.connect(name).close()
        kwargs = {**cl.connect_kwargs(cl.nodes[0], via_proxy=False), **settings}
        vendor = []
        cluster = registry.get(name)
        marks: dict[str, float] = {}
        _wrap(cluster, "begin", "begin", marks)
        entry = "start" if cluster.adapter.starts_inline else "connect"
        _wrap(cluster.adapter, entry, "driver", marks)
        _wrap(cluster, "record_success", "record", marks)
        _wrap(cluster, "record_outcome", "outcome", marks)
        rows: list[dict[str, float]] = []
        totals: list[float] = []
        for _ in range(n):
            dt, conn = peers.timed(lambda: peers.vendor_connect(driver, kwargs))
            conn.close()
            vendor.append(dt * 1e6)
            marks.clear()
            t0 = time.perf_counter()
            conn = clusterdb.connect(name)
            marks["end"] = time.perf_counter()
            conn.close()
            totals.append((marks["end"] - t0) * 1e6)
            rows.append({s: (marks[b] - marks[a]) * 1e6 for s, a, b in STAGES})
        clusterdb.unregister(name)
        clusterdb.close()
    print(f"{driver}, one node, direct port, {n} connects each, alternating; medians in µs")
    print(f"  {'vendor connect (caller thread)':32s} {median(vendor):8.1f}")
    print(f"  {'clusterdb.connect() total':32s} {median(totals):8.1f}")
    for stage, _, _ in STAGES:
        print(f"    {stage:30s} {median([r[stage] for r in rows]):8.1f}")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="bench/breakdown.py", description="Where clusterdb.connect() spends its time."
    )
    p.add_argument("driver", nargs="?", default="pymysql", choices=("psycopg", "pymysql"))
    p.add_argument("--n", type=int, default=300, help="connects per contender")
    args = p.parse_args(argv)
    breakdown(args.driver, args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
