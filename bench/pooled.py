"""Scenario 7: pooled writers through a failover, and what clusterdb's pool checks cost.

Four writer threads share a SQLAlchemy pool of four connections (``role="primary"``) while
the primary goes away: a MariaDB switchover (the old primary set ``read_only`` and left
running, a replica promoted, the rest following it), or a PostgreSQL primary killed and a
replica promoted. Contenders: ``clusterdb.sqlalchemy.create_engine`` against the README's
earlier recipe, ``sqlalchemy.create_engine(url, creator=lambda: clusterdb.connect(...),
pool_pre_ping=True)``. Each contender gets a fresh cluster (healed after the other's fault).

Reported per contender: failed writes, failed writes later than 1 s after the fault ended,
and the write outage (first to last failed write). Both contenders connect through the same
clusterdb.connect(), which looks for a new primary as soon as a primary attempt fails: what
differs is what the pool does with the connections it holds. The per-checkout cost of the
checks is the time of clusterdb's checkout and checkin listeners on a pooled connection of a
healthy cluster (timed alone: a checkin's reset is a round trip that would drown it).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy

import clusterdb
import clusterdb.sqlalchemy
from bench.clusterhost import RemoteCluster
from bench.common import Ctx, log
from bench.model import ScenarioResult
from bench.stats import median

__all__ = ["run_pooled"]

POOL = 4
RUN_AFTER = 8.0  # seconds of writes after the fault ended (the measure)
SETTLE = 1.0
CHECKOUTS = 20_000
GOAL_CHECK_US = 2.0
_URLS = {"psycopg": "postgresql+psycopg://", "pymysql": "mysql+pymysql://"}


@dataclass
class _Writers:
    """Threads inserting rows through ``engine`` until stopped; each outcome timed."""

    engine: sqlalchemy.Engine
    table: str
    failures: list[float] = field(default_factory=list)
    successes: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, index: int) -> None:
        insert = sqlalchemy.text(f"INSERT INTO {self.table} (id) VALUES (:id)")
        seq = 0
        while not self.stop.is_set():
            seq += 1
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert, {"id": index * 10_000_000 + seq})
            except Exception:
                self.failures.append(time.monotonic())
                time.sleep(0.02)
                continue
            self.successes.append(time.monotonic())
            time.sleep(0.002)


def _fault(cl: RemoteCluster) -> tuple[str, Callable[[], None]]:
    primary = next(n for n in cl.nodes if n.role == "primary")
    replica = next(n for n in cl.nodes if n.role == "replica")
    if cl.driver == "pymysql":
        return "switchover", lambda: cl.fault("switchover", replica.name)

    def kill_and_promote() -> None:
        cl.fault("kill", primary.name)
        time.sleep(0.3)
        cl.fault("promote", replica.name)

    return "primary killed, replica promoted", kill_and_promote


def _engine(contender: str, name: str, driver: str) -> sqlalchemy.Engine:
    if contender == "clusterdb":
        return clusterdb.sqlalchemy.create_engine(
            name, role="primary", pool_size=POOL, max_overflow=0
        )
    return sqlalchemy.create_engine(
        _URLS[driver],
        creator=lambda: clusterdb.connect(name, role="primary"),
        pool_size=POOL,
        max_overflow=0,
        pool_pre_ping=True,
    )


def _one_fault(ctx: Ctx, driver: str, contender: str) -> dict[str, float]:
    cl = ctx.cluster(driver)
    what, fault = _fault(cl)
    name = f"bench-pooled-{driver}"
    table = f"pooled_{uuid.uuid4().hex[:8]}"
    with ctx.registered_as(name, driver, via_proxy=True, settings={"monitor": True}):
        with contextlib.closing(clusterdb.connect(name, role="primary")) as conn:
            cur = conn.cursor()
            cur.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY)")
            conn.commit()
        engine = _engine(contender, name, driver)
        writers = _Writers(engine, table)
        threads = [threading.Thread(target=writers.run, args=(i,)) for i in range(POOL)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0)
            started = time.monotonic()
            fault()
            done = time.monotonic()
            log(f"pooled {driver} {contender}: {what} took {done - started:.1f} s")
            time.sleep(RUN_AFTER)
        finally:
            writers.stop.set()
            for t in threads:
                t.join(30)
            engine.dispose()
            cl.fault("heal")
    failures = [t for t in writers.failures if t > started]
    late = [t for t in failures if t > done + SETTLE]
    return {
        "failed": float(len(failures)),
        "failed_late": float(len(late)),
        "outage_s": (max(failures) - min(failures)) if failures else 0.0,
        "written": float(len([t for t in writers.successes if t > started])),
        "failing_at_end": float(any(t > done + RUN_AFTER - 1.0 for t in failures)),
    }


class _Entry:
    """Stands for the pool's record of a connection: the checks never need it while the
    connection fits and nothing is to move."""

    def invalidate(self) -> None:
        raise AssertionError("a healthy pooled connection was dropped")


def _checks_us(name: str, rounds: int) -> float:
    """Median time (us) of clusterdb's checkout and checkin listeners on a pooled connection
    of a healthy cluster: the work clusterdb adds to each checkout, without the pool's own."""
    watch = clusterdb.sqlalchemy.PoolWatch("any")
    entry: Any = _Entry()
    conn = clusterdb.connect(name)
    try:
        watch.on_connect(conn, entry)
        block = max(1, rounds // 9)
        per: list[float] = []
        for _ in range(9):
            t0 = time.perf_counter()
            for _ in range(block):
                watch.on_checkout(conn, entry, entry)
                watch.on_checkin(conn, entry)
            per.append((time.perf_counter() - t0) / block * 1e6)
    finally:
        conn.close()
    return median(per)


def run_pooled(ctx: Ctx, driver: str) -> ScenarioResult:
    what, _ = _fault(ctx.cluster(driver))
    result = ScenarioResult(
        key=f"pooled-{driver}",
        title=f"7. pooled writers through a failover: {what} ({driver})",
        path="proxy",
        settings={"pool": POOL, "writers": POOL, "after_s": RUN_AFTER, "heartbeat_s": 5.0},
    )
    figures = {c: _one_fault(ctx, driver, c) for c in ("clusterdb", "creator + pre_ping")}
    for who, f in figures.items():
        result.add(
            who,
            "writes",
            [f["failed"]],
            f"{f['failed']:.0f} failed writes ({f['failed_late']:.0f} later than {SETTLE:g} s "
            f"after the fault ended), outage {f['outage_s']:.2f} s, {f['written']:.0f} written"
            + (", still failing at the end" if f["failing_at_end"] else ""),
            **f,
        )
    ours = figures["clusterdb"]
    late = f"pooled {driver}: clusterdb's failed writes > 1 s after the fault"
    result.goal(late, ours["failed_late"], 0, "<=", "writes")
    name = f"bench-pooled-cost-{driver}"
    rounds = CHECKOUTS // (10 if ctx.counts.q_rounds < 100 else 1)
    with ctx.registered_as(name, driver, via_proxy=False, settings={}):
        checks = _checks_us(name, rounds)
    result.add(
        "checks per checkout",
        "us",
        [checks],
        "clusterdb's checkout and checkin listeners together, on a pooled connection of a "
        "healthy cluster (the pool's own work, its reset's round trip included, not counted)",
    )
    goal = f"pooled {driver}: per-checkout cost of the checks"
    result.goal(goal, checks, GOAL_CHECK_US, "<=", "us")
    log(
        f"{result.title}: clusterdb {ours['failed']:.0f} failed / {ours['outage_s']:.2f} s; "
        f"pre_ping {figures['creator + pre_ping']['failed']:.0f} failed / "
        f"{figures['creator + pre_ping']['outage_s']:.2f} s; checks {checks:.2f} us"
    )
    return result
