"""Fork and exit on real servers (issue 16): a child made by multiprocessing (fork, forkserver,
spawn) after heavy use, by ``os.fork()`` while attempts and probes are in flight towards a
hung node, or by ``os.fork()`` from a thread other than the main one, connects at once, opens
its own socket (never the parent's), leaves the parent's connection working, and exits
promptly.

Each case runs in a fresh interpreter (a script written to a file, so that spawn and
forkserver children can import it); the script prints one JSON line of what it saw. Bounds are
seconds where the work takes milliseconds (a connect here: 5-20 ms; an exit: well under 0.5 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]
CONNECT_BOUND_S = 5.0
"""A child's first connect, from its first line of code (a connect takes 5-20 ms here)."""
EXIT_BOUND_S = 10.0
"""From a child's last word to its exit being seen (at most ~1 s at exit is clusterdb's)."""

HEAD = """
import json, os, sys, threading, time
import multiprocessing as mp
import clusterdb
from clusterdb.runtime import process

clusterdb.register("c", driver="psycopg", nodes={nodes!r}, **{settings!r})


def sockets():
    '''The socket inodes this process holds open ("socket:[123]").'''
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{{fd}}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def socket_of(conn):
    return os.readlink(f"/proc/self/fd/{{conn.pgconn.socket}}")


def wait(check, timeout, step=0.02):
    for _ in range(int(timeout / step)):
        if check():
            return True
        time.sleep(step)
    return check()


def probes():
    return sum(n.probes for n in clusterdb.stats.snapshot("c").nodes)


def child_connects(parent_sockets):
    '''What a child reports: its first connect's time, its socket, its server session.'''
    started = time.monotonic()
    inherited = len(sockets() & set(parent_sockets))
    conn = clusterdb.connect("c")
    took = time.monotonic() - started
    mine = socket_of(conn)
    backend = conn.info.backend_pid
    conn.execute("SELECT 1")
    conn.close()
    for _ in range(5):
        clusterdb.connect("c").close()
    pending = sum(n.pending for n in clusterdb.stats.snapshot("c").nodes)
    return {{"took": took, "inherited": inherited, "new_socket": mine not in parent_sockets,
            "backend": backend, "pending": pending, "monitor": process.monitor().running}}
"""


def run_script(pg: PostgresCluster, tmp_path: Path, body: str, *args: str, **options: Any) -> Any:
    """Run HEAD + ``body`` as a file in a new interpreter; its last stdout line, as JSON."""
    settings = {"user": pg.user, "password": pg.password, "dbname": pg.dbname, **options}
    head = HEAD.format(nodes=pg.node_specs(), settings=settings)
    script = tmp_path / "forking.py"
    script.write_text(textwrap.dedent(head) + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        run = subprocess.run(
            [sys.executable, str(script), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=100,  # under pytest's own 120 s, so that what the script said is shown
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the script did not finish within 100 s: {exc.stderr!r}")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\n{result}")
    return result


MULTIPROCESSING = """
def child(parent_sockets, queue):
    report = child_connects(parent_sockets)
    report["said_at"] = time.time()
    queue.put(report)


if __name__ == "__main__":
    def use():
        for _ in range(25):
            clusterdb.connect("c").close()

    users = [threading.Thread(target=use) for _ in range(4)]
    for user in users:
        user.start()
    for user in users:
        user.join()
    assert wait(lambda: probes() >= 3, 10), "the monitor never probed"
    assert process.monitor().running
    kept = clusterdb.connect("c")  # the parent's own, used again after the children
    parent_sockets = sorted(sockets())
    assert socket_of(kept) in parent_sockets
    context = mp.get_context(sys.argv[1])
    queue = context.Queue()
    children = [context.Process(target=child, args=(parent_sockets, queue)) for _ in range(2)]
    for p in children:
        p.start()
    reports = [queue.get(timeout=60) for _ in children]
    for p in children:
        p.join(60)
    exited = time.time()
    kept.execute("SELECT 1")
    print(json.dumps({
        "children": reports,
        "exit_s": max(exited - r["said_at"] for r in reports),
        "codes": [p.exitcode for p in children],
        "parent_backend": kept.info.backend_pid,
        "parent_ok": not kept.closed,
    }))
"""


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_multiprocessing_child_after_heavy_use_connects_on_its_own_socket_and_exits(
    pg_cluster: PostgresCluster, tmp_path: Path, method: str
) -> None:
    out = run_script(pg_cluster, tmp_path, MULTIPROCESSING, method, heartbeat=0.2)
    assert out["codes"] == [0, 0]
    assert out["parent_ok"]
    assert out["exit_s"] < EXIT_BOUND_S
    for child in out["children"]:
        assert child["took"] < CONNECT_BOUND_S
        assert child["new_socket"]
        assert child["backend"] != out["parent_backend"]
        assert child["pending"] == 0
        assert child["monitor"]  # the child's own monitor, started by its first connect
        if method != "fork":
            assert child["inherited"] == 0  # a fresh interpreter holds none of the parent's


IN_FLIGHT = """
stop = threading.Event()


def connect_loop():
    while not stop.is_set():
        try:
            clusterdb.connect("c").close()
        except Exception:
            pass


def probing_the_hung_node():
    return any(t.name == "clusterdb-probe-c-" + HUNG for t in threading.enumerate())


def attempts_pending():
    return any(n.pending for n in clusterdb.stats.snapshot("c").nodes)


HUNG = sys.argv[1]
users = [threading.Thread(target=connect_loop, daemon=True) for _ in range(3)]
for user in users:
    user.start()
assert wait(probing_the_hung_node, 20), "no probe of the hung node in flight"
in_flight = wait(attempts_pending, 20)
parent_sockets = sorted(sockets())
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    import faulthandler
    faulthandler.dump_traceback_later(45, exit=True)  # a hang shows its stacks, then ends
    try:
        report = child_connects(parent_sockets)
    except BaseException as exc:
        report = {"error": repr(exc)}
    report["said_at"] = time.time()
    os.write(write, json.dumps(report).encode())
    sys.exit(0)  # a normal exit: the exit hook runs, a probe of the hung node is not waited for
os.close(write)
import faulthandler
faulthandler.dump_traceback_later(60, exit=True)
report = json.loads(os.read(read, 65536).decode())
_, status = os.waitpid(pid, 0)
exited = time.time()
stop.set()
print(json.dumps({"child": report, "in_flight": in_flight,
                  "code": os.waitstatus_to_exitcode(status), "exit_s": exited - report["said_at"]}))
"""


def test_a_child_forked_while_attempts_and_probes_hang_connects_at_once_and_exits(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    hung = pg_cluster.nodes[2]
    hung.hang()
    try:
        out = run_script(
            pg_cluster, tmp_path, IN_FLIGHT, hung.name, heartbeat=0.2, connect_timeout=30.0
        )
    finally:
        hung.resume()
    child = out["child"]
    assert "error" not in child, child
    assert out["in_flight"]  # the fork came while attempts on the hung node were pending
    assert out["code"] == 0
    assert child["took"] < CONNECT_BOUND_S
    assert child["new_socket"]
    # Not the 30 s a probe of the hung node may take. Measured 2.5-3.9 s at load 50-77 on 2
    # cores (an interpreter's own finalization, scheduled that seldom); under 0.1 s when idle.
    assert out["exit_s"] < EXIT_BOUND_S


FROM_A_THREAD = """
clusterdb.connect("c").close()
assert wait(lambda: probes() >= 3, 10), "the monitor never probed"
kept = clusterdb.connect("c")
parent_sockets = sorted(sockets())
read, write = os.pipe()
forked = {}


def fork_here():
    pid = os.fork()
    if pid == 0:
        try:
            report = child_connects(parent_sockets)
            report["closed"] = clusterdb.close(5.0)
            report["threads"] = [
                t.name for t in threading.enumerate() if t.name.startswith("clusterdb-")
            ]
        except BaseException as exc:
            report = {"error": repr(exc)}
        report["said_at"] = time.time()
        os.write(write, json.dumps(report).encode())
        os._exit(0)  # the main thread does not exist in this child: nothing else would end it
    forked["pid"] = pid


thread = threading.Thread(target=fork_here)
thread.start()
thread.join()
os.close(write)
import faulthandler
faulthandler.dump_traceback_later(60, exit=True)
report = json.loads(os.read(read, 65536).decode())
_, status = os.waitpid(forked["pid"], 0)
exited = time.time()
kept.execute("SELECT 1")
print(json.dumps({"child": report, "code": os.waitstatus_to_exitcode(status),
                  "exit_s": exited - report["said_at"], "parent_backend": kept.info.backend_pid}))
"""


def test_a_child_forked_from_another_thread_connects_closes_and_exits(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    out = run_script(pg_cluster, tmp_path, FROM_A_THREAD, heartbeat=0.2)
    child = out["child"]
    assert "error" not in child, child
    assert out["code"] == 0
    assert child["took"] < CONNECT_BOUND_S
    assert child["new_socket"] and child["backend"] != out["parent_backend"]
    assert child["monitor"]
    assert child["closed"] is True and child["threads"] == []  # close() left no thread
    assert out["exit_s"] < EXIT_BOUND_S
