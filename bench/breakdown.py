"""Where clusterdb.connect()'s time goes, stage by stage, against the vendor connect.

Usage: ``.venv/bin/python bench/breakdown.py [psycopg|pymysql] [--n 300] [--nodes 1]
[--cpus-may-sleep] [--dump FILE]``. A cluster of ``--nodes`` nodes (direct ports) after a
warm-up; each round connects the vendor driver to every node, then clusterdb once, as ``make
bench`` does (so clusterdb's code runs with the caches the vendor's connects left). Timestamps
come from wrapping the cluster's own steps, so the stages add up to the whole call:

* ``enter``: from the call to the plan (the cluster's lookup, the connect pipeline's set-up);
* ``plan``: ``Cluster.begin`` (a kept ranking and a random draw, or a new ranking);
* ``to driver``: from the plan to the driver's connect starting;
* ``driver connect``: the adapter's ``start`` (in the calling thread: TCP connect, wait for the
  greeting, PyMySQL's handshake; psycopg's connect generator), or its ``connect`` on a worker;
* ``after driver``: from the driver's return to the stats (role detection, the race if any);
* ``record``: ``Cluster.record_returned`` (which queues the stats for the next attempt's
  wait for its server, see there);
* ``return``: from the stats to the caller (a hand-over from a worker when there was one).

Rounds where clusterdb raced or hedged (a stage missing) are left out and counted.
"""

from __future__ import annotations

import argparse
import functools
import json
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
from bench.idle import IdleControl  # noqa: E402
from bench.stats import median  # noqa: E402
from clusterdb.runtime import process  # noqa: E402

STAGES = (
    ("enter", "start", "begin_in"),
    ("plan", "begin_in", "begin_out"),
    ("to driver", "begin_out", "driver_in"),
    ("driver connect", "driver_in", "driver_out"),
    ("after driver", "driver_out", "record_in"),
    ("record", "record_in", "record_out"),
    ("return", "record_out", "end"),
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


def breakdown(driver: str, n: int, nodes: int, cpus_sleep: bool, dump: Path | None) -> None:
    with IdleControl(not cpus_sleep) as idle, start_clusters([driver]) as host:
        cl = host.clusters[driver]
        settings = peers.driver_settings(driver)
        name = "bench-breakdown"
        clusterdb.register(
            name,
            driver=driver,
            nodes=cl.node_specs(via_proxy=False)[:nodes],
            user=cl.user,
            password=cl.password,
            **{cl.dbname_key: cl.dbname},
            **settings,
        )
        for _ in range(30):
            clusterdb.connect(name).close()
        each = [{**cl.connect_kwargs(x, via_proxy=False), **settings} for x in cl.nodes[:nodes]]
        vendor: list[list[float]] = [[] for _ in each]
        cluster = process.get(name)
        marks: dict[str, float] = {}
        _wrap(cluster, "begin", "begin", marks)
        entry = "start" if cluster.adapter.starts_inline else "connect"
        _wrap(cluster.adapter, entry, "driver", marks)
        _wrap(cluster, "record_returned", "record", marks)
        rows: list[dict[str, float]] = []
        totals: list[float] = []
        for _ in range(n):
            for i, kwargs in enumerate(each):
                dt, conn = peers.timed(functools.partial(peers.vendor_connect, driver, kwargs))
                conn.close()
                vendor[i].append(dt * 1e6)
            marks.clear()
            t0 = marks["start"] = time.perf_counter()
            conn = clusterdb.connect(name)
            marks["end"] = time.perf_counter()
            conn.close()
            if all(a in marks and b in marks for _, a, b in STAGES):
                totals.append((marks["end"] - t0) * 1e6)
                rows.append({s: (marks[b] - marks[a]) * 1e6 for s, a, b in STAGES})
        clusterdb.unregister(name)
        clusterdb.close()
    best = min(median(v) for v in vendor)
    print(
        f"{driver}, {nodes} node(s), direct ports, {n} rounds, {idle.status}; medians in µs "
        f"({n - len(rows)} rounds raced or hedged, left out)"
    )
    print(f"  {'vendor connect, best node':32s} {best:8.1f}")
    print(f"  {'clusterdb.connect() total':32s} {median(totals):8.1f}")
    for stage, _, _ in STAGES:
        print(f"    {stage:30s} {median([r[stage] for r in rows]):8.1f}")
    if dump is not None:
        dump.write_text(json.dumps({"rows": rows, "totals": totals, "vendor": vendor}))


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="bench/breakdown.py", description="Where clusterdb.connect() spends its time."
    )
    p.add_argument("driver", nargs="?", default="pymysql", choices=("psycopg", "pymysql"))
    p.add_argument("--n", type=int, default=300, help="rounds")
    p.add_argument("--nodes", type=int, default=1, choices=(1, 2, 3), help="cluster size")
    p.add_argument("--cpus-may-sleep", action="store_true", help="see bench/idle.py")
    p.add_argument("--dump", type=Path, help="write every round's stage times here (JSON)")
    args = p.parse_args(argv)
    breakdown(args.driver, args.n, args.nodes, args.cpus_may_sleep, args.dump)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
