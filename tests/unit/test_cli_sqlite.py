"""``python -m clusterdb`` on a sqlite3 "cluster": the CLI's paths without any server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import clusterdb
from clusterdb.stats import NodeStats


def run_cli(
    args: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != "CLUSTERDB_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "clusterdb", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


def write(path: Path, *node_paths: Path, extra: str = "") -> Path:
    nodes = ", ".join(json.dumps(str(p)) for p in node_paths)
    path.write_text(
        f'[clusters.lite]\ndriver = "sqlite3"\nconnect_timeout = 1.0\n{extra}\nnodes = [{nodes}]\n'
    )
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    # The second node's directory does not exist: sqlite3 cannot open it, a "down" node.
    return write(tmp_path / "c.toml", tmp_path / "a.db", tmp_path / "missing" / "b.db")


@pytest.fixture
def loaded(config: Path) -> Iterator[str]:
    (name,) = clusterdb.load_config(str(config))
    try:
        yield name
    finally:
        clusterdb.unregister(name)


def test_status_table(config: Path, tmp_path: Path) -> None:
    out = run_cli(["status", "-c", str(config)])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["CLUSTER", "NODE", "ADDRESS", "STATE", "ROLE"]
    up, down = lines[1].split(), lines[2].split()
    assert up[:4] == ["lite", "node1", str(tmp_path / "a.db"), "up"]
    assert down[:4] == ["lite", "node2", str(tmp_path / "missing" / "b.db"), "down"]
    assert "unable to open database file" in lines[2]


def test_status_json_matches_snapshot(config: Path, loaded: str) -> None:
    out = run_cli(["status", "-c", str(config), "--json"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    clusterdb.connect(loaded).close()  # races both nodes: one up, one down, as in the CLI
    # The losing attempt lands in the stats after connect() returned.
    deadline = time.monotonic() + 10
    while any(n.pending for n in clusterdb.stats.snapshot(loaded).nodes):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    mine = clusterdb.stats.snapshot()[loaded].as_dict()
    theirs = doc[loaded]
    assert set(theirs) == set(mine)
    assert theirs["driver"] == mine["driver"] == "sqlite3"
    assert [n["name"] for n in theirs["nodes"]] == [n["name"] for n in mine["nodes"]]
    for node in theirs["nodes"]:
        assert set(node) == set(NodeStats.__dataclass_fields__)
    for key in ("name", "address", "state", "role", "drained"):
        assert [n[key] for n in theirs["nodes"]] == [n[key] for n in mine["nodes"]], key
    assert [n["state"] for n in theirs["nodes"]] == ["up", "down"]


def test_only_named_clusters(tmp_path: Path) -> None:
    config = tmp_path / "two.toml"
    text = write(tmp_path / "one.toml", tmp_path / "a.db").read_text()
    config.write_text(text + "\n" + text.replace("clusters.lite", "clusters.other"))
    out = run_cli(["status", "-c", str(config), "other"])
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == ["other"]


def test_check(config: Path, tmp_path: Path) -> None:
    ok = run_cli(["check", "-c", str(config)])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("lite: OK: primary reachable")
    assert "1 of 2 nodes up" in ok.stdout

    dead = write(tmp_path / "dead.toml", tmp_path / "nope" / "a.db", tmp_path / "nope" / "b.db")
    bad = run_cli(["check", "-c", str(dead), "--timeout", "1"])
    assert bad.returncode == 1
    assert bad.stdout.startswith("lite: FAIL: no reachable primary; 0 of 2 nodes up")
    assert "    node1: " in bad.stdout
    assert "    node2: " in bad.stdout


def test_usage_and_config_errors(tmp_path: Path, config: Path) -> None:
    none = run_cli(["status"])
    assert none.returncode == 2
    assert "no config file: pass -c FILE or set CLUSTERDB_CONFIG" in none.stderr

    from_env = run_cli(["status"], env={"CLUSTERDB_CONFIG": str(config)})
    assert from_env.returncode == 0, from_env.stderr

    missing = run_cli(["check", "-c", str(tmp_path / "nope.toml")])
    assert missing.returncode == 2
    assert "not found" in missing.stderr

    typo = write(tmp_path / "typo.toml", tmp_path / "a.db", extra="conect_timeout = 1")
    typo_out = run_cli(["check", "-c", str(typo)])
    assert typo_out.returncode == 2
    assert "clusters.lite.conect_timeout" in typo_out.stderr

    unknown = run_cli(["status", "-c", str(config), "nosuch"])
    assert unknown.returncode == 2
    assert "'nosuch'" in unknown.stderr

    for args in (["status", "--watch", "-1"], ["check", "--timeout", "x"], ["frobnicate"]):
        usage = run_cli(args)
        assert usage.returncode == 2, args
    for out in (none, missing, typo_out, unknown):
        assert "Traceback" not in out.stderr, out.stderr


def test_watch_until_ctrl_c(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLUSTERDB_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdb", "status", "-c", str(config), "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        tables = 0
        deadline = time.monotonic() + 30
        while tables < 2 and time.monotonic() < deadline:
            if proc.stdout.readline().startswith("CLUSTER"):
                tables += 1
        assert tables == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err


def test_watch_json_lines(config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLUSTERDB_CONFIG"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clusterdb",
            "status",
            "-c",
            str(config),
            "--json",
            "--watch",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        docs = [json.loads(proc.stdout.readline()) for _ in range(2)]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert all(list(d) == ["lite"] for d in docs)
    assert proc.returncode == 0
