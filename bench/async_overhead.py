"""``await clusterdb.connect_async()`` against asyncmy alone, on a local MariaDB cluster.

Usage: ``.venv/bin/python bench/async_overhead.py [--n 400]``. A
:class:`clusterdb.testing.MariaDBCluster` (a primary and 2 replicas, direct ports), registered
with ``autocommit=True, ssl_disabled=True``; after a warm-up, each round times asyncmy alone on
every node, then connect_async once (interleaved, one event loop); prints the medians in
microseconds and connect_async's ratio to asyncmy alone on the fastest node and, round by
round, on the node it chose (with the median of those differences).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import clusterdb  # noqa: E402
from clusterdb.drivers.mysql_async import asyncmy_kwargs  # noqa: E402
from clusterdb.testing import MariaDBCluster  # noqa: E402

NAME = "async-overhead"


async def _rounds(n: int, node_kwargs: dict[str, dict[str, Any]]) -> None:
    from asyncmy.connection import Connection

    made = {name: asyncmy_kwargs(kw) for name, kw in node_kwargs.items()}
    vendor: dict[str, list[float]] = {name: [] for name in made}
    ours: list[float] = []
    paired: list[float] = []  # each round's asyncmy alone on the node clusterdb chose
    chosen: Counter[str] = Counter()
    for i in range(n + 50):
        for name, kw in made.items():
            t0 = time.perf_counter()
            conn: Any = Connection(**kw)  # type: ignore[no-untyped-call]
            await conn.connect()
            dt = time.perf_counter() - t0
            conn.close()
            await asyncio.sleep(0)
            if i >= 50:
                vendor[name].append(dt)
        t0 = time.perf_counter()
        conn = await clusterdb.connect_async(NAME)
        dt = time.perf_counter() - t0
        node = clusterdb.node_of(conn)
        conn.close()
        await asyncio.sleep(0)
        if i >= 50 and node is not None:
            ours.append(dt)
            paired.append(vendor[node.node][-1])
            chosen[node.node] += 1
    ours_us = statistics.median(ours) * 1e6
    for name, times in vendor.items():
        print(f"asyncmy alone {name}: {statistics.median(times) * 1e6:7.1f} us")
    print(f"connect_async: {ours_us:7.1f} us (chose {dict(chosen)})")
    fastest_us = min(statistics.median(times) for times in vendor.values()) * 1e6
    same_us = statistics.median(paired) * 1e6
    extra_us = statistics.median(o - v for o, v in zip(ours, paired, strict=True)) * 1e6
    print(f"vs asyncmy on the fastest node: {ours_us / fastest_us:.3f}x")
    print(
        f"vs asyncmy on the node chosen, same round: {ours_us / same_us:.3f}x, "
        f"median difference {extra_us:.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()
    cl = MariaDBCluster(replicas=2)
    cl.start()
    try:
        clusterdb.register(
            NAME, **cl.register_kwargs(via_proxy=False), autocommit=True, ssl_disabled=True
        )
        clusterdb.probe(NAME)
        extra = {"autocommit": True, "ssl_disabled": True}
        node_kwargs = {n.name: {**cl.connect_kwargs(n, via_proxy=False), **extra} for n in cl.nodes}
        asyncio.run(_rounds(args.n, node_kwargs))
    finally:
        clusterdb.close()
        cl.stop()


if __name__ == "__main__":
    main()
