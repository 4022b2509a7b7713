"""Node health on real servers (issue 4): a node killed while connects run is tried at most
once, then set aside and shown down; restarted, the monitor brings it back into rotation within
seconds. And what the monitor costs: one probe per node per heartbeat, no connection held open
between probes, no hold on interpreter exit, a working monitor in a forked child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from connect_support import app_connections, registered, warm_up_until_first
from health_support import ConnectLoop, describe_nodes, node_stats, until

import clusterdb
from clusterdb.testing.cluster import Cluster
from clusterdb.testing.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]


def test_a_killed_node_is_tried_once_then_set_aside_and_back_within_5_s(
    pg_cluster: PostgresCluster,
) -> None:
    far, victim, farther = pg_cluster.nodes
    # The others are far behind (several ms per round trip), so while the victim is up nearly
    # every connect goes to it, and once it is back it is visibly chosen again.
    far.proxy.set_delay(0.003)
    farther.proxy.set_delay(0.003)
    with registered(pg_cluster, monitor=True, connect_timeout=5.0) as name:
        warm_up_until_first(name, victim.name)
        with ConnectLoop(pg_cluster, name) as loop:
            before_kill = time.monotonic()
            assert victim.name in loop.wait_landings(before_kill, 5)
            before = node_stats(name, victim.name)
            assert before.state == "up" and before.down_since is None

            killed = time.monotonic()
            victim.kill()
            # Down within a few connects (the first attempt on it fails, or the monitor's
            # probe sees it first), and not tried again while it is down.
            down = until(lambda: node_stats(name, victim.name).state == "down", timeout=10)
            assert down is not None, describe_nodes(name)
            marked_down = time.monotonic()
            at_down = node_stats(name, victim.name)
            landings = loop.wait_landings(marked_down, 30)
            assert victim.name not in landings, landings
            while_down = node_stats(name, victim.name)
            # Every attempt on a dead node fails: its errors (plus any still pending) are the
            # attempts made on it since the kill, over 30 connects or more.
            tried = while_down.connect_errors - before.connect_errors + while_down.pending
            assert tried <= 1, (tried, describe_nodes(name))
            assert at_down.down_since is not None and at_down.state_changes > before.state_changes
            assert before.last_state_change_at is not None
            assert at_down.last_state_change_at is not None
            assert at_down.last_state_change_at > before.last_state_change_at
            assert at_down.last_error is not None
            print(
                f"\nkilled: down after {marked_down - killed:.3f} s, "
                f"{tried} failed attempt(s) on it, then {len(landings)} connects elsewhere"
            )

            victim.start()
            ready = time.monotonic()
            back = until(lambda: victim.name in loop.since(ready), timeout=10)
            print(f"restarted: back in rotation {back} s after it accepted connections")
            assert back is not None and back < 5.0, describe_nodes(name)
            after = node_stats(name, victim.name)
            assert after.state == "up" and after.down_since is None
            assert after.state_changes == at_down.state_changes + 1
        assert loop.failures == [], loop.failures
        snap = clusterdb.stats.snapshot(name)
        assert snap.failures == 0


def test_the_monitor_probes_once_per_heartbeat_and_holds_no_connection(
    pg_cluster: PostgresCluster,
) -> None:
    heartbeat = 0.25
    node = pg_cluster.nodes[1]
    assert until(lambda: app_connections(pg_cluster, node) == 0, timeout=5) is not None
    with registered(pg_cluster, monitor=True, heartbeat=heartbeat) as name:
        clusterdb.connect(name).close()  # first use starts the monitor
        assert until(lambda: node_stats(name, node.name).probes >= 1, timeout=10) is not None
        started = time.monotonic()
        first = {n.name: n.probes for n in clusterdb.stats.snapshot(name).nodes}
        # Between probes no session of the application user is open on the node (the server
        # is the witness): a sample that finds one (a probe in flight) is soon followed by one
        # that does not. A connection kept open between probes would never go.
        empty_samples = samples = 0
        while time.monotonic() - started < 2.0:
            samples += 1
            if app_connections(pg_cluster, node) == 0:
                empty_samples += 1
            else:
                gone = until(lambda: app_connections(pg_cluster, node) == 0, timeout=5)
                assert gone is not None, "a probe's connection stayed open"
            time.sleep(0.03)
        probes = {n.name: n.probes - first[n.name] for n in clusterdb.stats.snapshot(name).nodes}
        elapsed = time.monotonic() - started
        print(
            f"\n{probes} probes per node in {elapsed:.2f} s at heartbeat {heartbeat} s; "
            f"no session open in {empty_samples} of {samples} samples"
        )
        # A probe is due a heartbeat after the previous one ended: over the measured period
        # at most elapsed / heartbeat + 1 per node. And the monitor does run.
        allowed = elapsed / heartbeat + 1
        for count in probes.values():
            assert 2 <= count <= allowed, (probes, allowed)
        assert empty_samples >= samples // 2
        snap = clusterdb.stats.snapshot(name)
        assert all(n.probe_errors == 0 and n.rtt_ms is not None for n in snap.nodes)
    assert until(lambda: app_connections(pg_cluster, node) == 0, timeout=5) is not None


def _script(harness: Cluster, body: str, **options: object) -> str:
    """A Python program registering cluster "c" over the harness's nodes, then ``body``."""
    settings = {
        "user": harness.user,
        "password": harness.password,
        "dbname": harness.dbname,
        **options,
    }
    head = f"""
        import json, os, sys, threading, time
        import clusterdb
        from clusterdb.runtime import process
        clusterdb.register("c", driver={harness.driver!r}, nodes={harness.node_specs()!r},
                           **{settings!r})
        def probes():
            return sum(n.probes for n in clusterdb.stats.snapshot("c").nodes)
        def wait(check, timeout):
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
            return True
    """
    return textwrap.dedent(head) + textwrap.dedent(body)


def _run(script: str, timeout: float = 60) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def test_a_process_exits_at_once_with_the_monitor_stuck_on_a_hung_node(
    pg_cluster: PostgresCluster,
) -> None:
    hung = pg_cluster.nodes[2]
    hung.hang()
    # A probe of the hung node waits up to connect_timeout (20 s): if anything joined it at
    # exit, the process would take that long to end.
    body = f"""
        clusterdb.connect("c").close()
        assert wait(lambda: any(t.name == "clusterdb-probe-c-{hung.name}"
                                for t in threading.enumerate()), 10), "no probe of the hung node"
        assert process.monitor().running
        print("exiting", flush=True)
    """
    proc = _run(_script(pg_cluster, body, connect_timeout=20.0, heartbeat=0.2))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    said_exiting = time.monotonic()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the process did not exit within 15 s with its monitor probing a hung node")
    took = time.monotonic() - said_exiting
    stderr = proc.stderr.read() if proc.stderr else ""
    assert line.strip() == "exiting", (line, stderr)
    assert proc.returncode == 0, stderr
    print(f"\nexited {took:.3f} s after its last statement, a probe hung on {hung.name}")
    assert took < 3.0


def test_a_forked_child_connects_and_runs_its_own_monitor(pg_cluster: PostgresCluster) -> None:
    body = """
        clusterdb.connect("c").close()
        assert wait(lambda: probes() >= 3, 10), "the parent's monitor never probed"
        parent_monitor = process.monitor()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                at_fork = probes()
                clusterdb.connect("c").close()
                child_monitor = process.monitor()
                grew = wait(lambda: probes() >= at_fork + 6, 10)
                out = {"connected": True, "fresh": child_monitor is not parent_monitor,
                       "running": child_monitor.running, "grew": grew,
                       "probes": probes() - at_fork}
            except BaseException as exc:
                out = {"error": repr(exc)}
            os.write(write, json.dumps(out).encode())
            os._exit(0)
        os.close(write)
        _, status = os.waitpid(pid, 0)
        print(os.read(read, 65536).decode(), flush=True)
        assert status == 0
    """
    proc = _run(_script(pg_cluster, body, heartbeat=0.2))
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the fork test did not finish within 60 s")
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    print(f"\nforked child: {result}")
    assert result == {**result, "connected": True, "fresh": True, "running": True, "grew": True}
