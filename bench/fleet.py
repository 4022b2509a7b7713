"""Fleet scale: the probe load of many processes on one PostgreSQL cluster, as the servers see it.

``FLEET`` real Python processes each register the cluster (its direct ports, a short
``heartbeat``) and start clusterdb's monitor with one connect. Two phases, ``window`` seconds
each:

* **idle**: the processes do nothing; every server session opened is a probe. The rule: each
  process probes each node at most once per heartbeat and keeps no connection, so the fleet
  opens at most ``processes * nodes / heartbeat`` sessions per second.
* **busy**: every process connects (role ``any``) ``rate`` times a second. A node that a
  process's own connects saw within the heartbeat is not probed, so probes fall.

Sessions opened are counted by the servers: the sum of ``pg_stat_database.sessions`` over the
nodes (PostgreSQL 14+), read before and after each window (our own reading sessions are
subtracted). The processes' own counters (connects, probes) say which sessions were probes.
Idle CPU per process: ``utime + stime`` from ``/proc/<pid>/stat`` over the idle window.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from statistics import median
from typing import Any

import psycopg

from bench.common import Ctx, log
from bench.model import ScenarioResult
from clusterdb.config.model import ClusterOptions

__all__ = ["run_fleet"]

_CHILD = r"""
import json, sys, threading
import clusterdb
cfg = json.loads(sys.argv[1])
clusterdb.register("fleet", **cfg["register"])
go = threading.Event()
rate = [0.0]
def busy():
    while True:
        go.wait()
        try:
            clusterdb.connect("fleet").close()
        except Exception:
            pass
        threading.Event().wait(1.0 / rate[0])
threading.Thread(target=busy, daemon=True).start()
try:
    clusterdb.connect("fleet").close()  # the first use starts the monitor
except Exception as exc:  # a loaded machine: the monitor runs all the same
    print(f"first connect failed: {exc!r}".replace("\n", " "), file=sys.stderr)
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "busy":
        rate[0] = float(cmd[1])
        go.set()
    elif cmd[0] == "idle":
        go.clear()
    elif cmd[0] == "stats":
        s = clusterdb.stats.snapshot("fleet")
        print(json.dumps({"connects": s.connects, "probes": sum(n.probes for n in s.nodes)}),
              flush=True)
    elif cmd[0] == "quit":
        break
"""

_CLK = os.sysconf("SC_CLK_TCK")
_BATCH = 10


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK  # utime, stime


def _sessions(kwargs: list[dict[str, Any]]) -> int:
    """Sessions ever opened on every node (each reading opens one more per node)."""
    total = 0
    for kw in kwargs:
        with psycopg.connect(**kw, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SELECT sum(sessions)::bigint FROM pg_stat_database").fetchone()
            total += int(row[0]) if row and row[0] is not None else 0
    return total


class _Fleet:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, n: int, register: dict[str, Any]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        arg = json.dumps({"register": register})
        # In batches: a hundred interpreters importing at once would starve each other.
        for start in range(0, n, _BATCH):
            batch = [
                subprocess.Popen(
                    [sys.executable, "-c", _CHILD, arg],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                for _ in range(min(_BATCH, n - start))
            ]
            self.procs += batch
            for p in batch:
                assert p.stdout is not None
                line = p.stdout.readline().strip()
                if line != "ready":
                    raise RuntimeError(f"a fleet process did not start: {line!r}")

    def send(self, line: str) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.write(line + "\n")
            p.stdin.flush()

    def stats(self) -> tuple[int, int]:
        self.send("stats")
        connects = probes = 0
        for p in self.procs:
            assert p.stdout is not None
            s = json.loads(p.stdout.readline())
            connects += s["connects"]
            probes += s["probes"]
        return connects, probes

    def cpu(self) -> list[float]:
        return [_cpu_seconds(p.pid) for p in self.procs]

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(Exception):
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _phase(fleet: _Fleet, kwargs: list[dict[str, Any]], window: float) -> dict[str, float]:
    s0, (c0, p0), cpu0, t0 = _sessions(kwargs), fleet.stats(), fleet.cpu(), time.monotonic()
    time.sleep(window)
    s1, (c1, p1), cpu1 = _sessions(kwargs), fleet.stats(), fleet.cpu()
    elapsed = time.monotonic() - t0
    sessions = s1 - s0 - len(kwargs)  # the first reading's own sessions
    return {
        "sessions_per_s": sessions / elapsed,
        "connects_per_s": (c1 - c0) / elapsed,
        "probes_per_s": (p1 - p0) / elapsed,
        "cpu_pct": median(100.0 * (b - a) / elapsed for a, b in zip(cpu0, cpu1, strict=True)),
    }


def run_fleet(ctx: Ctx) -> ScenarioResult:
    """Sessions opened per second by a fleet's probes, idle and busy, and idle CPU."""
    quick = ctx.counts.q_rounds < 100
    n = int(os.environ.get("FLEET", "100"))
    # clusterdb's default heartbeat, what a fleet runs unless told otherwise (until
    # 2026-12-03: 2 s, with which a busy process's ~2 connects per heartbeat left most nodes
    # to be probed when the 2 cores could not sustain the 2 connects per second asked for).
    heartbeat, rate = ClusterOptions().heartbeat, 2.0
    window = heartbeat * (2 if quick else 3)  # whole heartbeats: every node's probe counted
    cl = ctx.cluster("psycopg")
    nodes = len(cl.nodes)
    result = ScenarioResult(
        key="fleet",
        title=f"8. fleet: {n} processes on one PostgreSQL 1+2 cluster",
        path="direct",
        settings={"processes": n, "heartbeat_s": heartbeat, "busy_rate": rate, "window_s": window},
    )
    register = {
        "driver": "psycopg",
        "nodes": cl.node_specs(via_proxy=False),
        "user": cl.user,
        "password": cl.password,
        cl.dbname_key: cl.dbname,
        "heartbeat": heartbeat,
    }
    kwargs = [cl.connect_kwargs(node, via_proxy=False) for node in cl.nodes]
    t0 = time.monotonic()
    fleet = _Fleet()
    try:
        fleet.start(n, register)
        log(f"{result.title}: {n} processes up in {time.monotonic() - t0:.1f} s")
        time.sleep(heartbeat * 1.5)  # past the first, required probes
        idle = _phase(fleet, kwargs, window)
        fleet.send(f"busy {rate}")
        time.sleep(heartbeat)
        busy = _phase(fleet, kwargs, window)
        fleet.send("idle")
    finally:
        fleet.close()
    bound = n * nodes / heartbeat
    for name, ph in (("idle", idle), ("busy", busy)):
        result.add(
            name,
            "sessions/s",
            [ph["sessions_per_s"]],
            f"probes {ph['probes_per_s']:.0f}/s, connects {ph['connects_per_s']:.0f}/s",
            probes_per_s=ph["probes_per_s"],
            connects_per_s=ph["connects_per_s"],
        )
        log(
            f"{result.title}: {name}: {ph['sessions_per_s']:.0f} sessions/s opened "
            f"({ph['probes_per_s']:.0f} probes/s, {ph['connects_per_s']:.0f} connects/s)"
        )
    result.add("idle CPU per process", "%", [idle["cpu_pct"]], "median over the processes")
    result.goal(
        "idle fleet probes per second / (processes x nodes / heartbeat)",
        idle["probes_per_s"] / bound,
        1.05,
        "<=",
    )
    result.goal(
        "busy fleet probes per second / idle fleet's",
        busy["probes_per_s"] / max(idle["probes_per_s"], 1e-9),
        0.5,
        "<=",
    )
    result.goal("idle CPU per process (%)", idle["cpu_pct"], 1.0, "<=", unit="%")
    result.notes.append(
        f"Bound without the rule: {bound:.0f} probes/s ({n} x {nodes} nodes / {heartbeat:g} s). "
        f"A busy process skips the probe of a node its own connects saw within the heartbeat."
    )
    return result
