"""``python -m clusterdb status|check`` as a subprocess against the harness clusters."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import clusterdb
from clusterdb.config import CONFIG_ENV
from clusterdb.stats import NodeStats
from clusterdb.tools import cli
from clusterdb.tools.report import STATUS_HEADERS

PW_ENV = "CLUSTERDB_TEST_CLI_PASSWORD"
CANARY = "Canary-9f3e1d-secret"
AGE = re.compile(r"\b(\d+[smhd](?:\d+[sm])?) ago\b")


def write_config(
    path: Path,
    cluster: Any,
    *,
    name: str = "main",
    driver: str = "psycopg",
    password_line: str = f'password_env = "{PW_ENV}"',
    connect_timeout: float = 2.0,
    extra: str = "",
) -> Path:
    lines = [
        f"[clusters.{name}]",
        f'driver = "{driver}"',
        f"connect_timeout = {connect_timeout}",
        f'user = "{cluster.user}"',
        # PyMySQL calls it database.
        f'{"database" if driver == "pymysql" else "dbname"} = "{cluster.dbname}"',
        password_line,
        extra,
    ]
    for spec in cluster.node_specs(via_proxy=True):
        lines += [
            f"[[clusters.{name}.nodes]]",
            f'name = "{spec["name"]}"',
            f'host = "{spec["host"]}"',
            f"port = {spec['port']}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(
    args: Sequence[str], password: str | None, timeout: float = 90.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV}
    if password is not None:
        env[PW_ENV] = password
    return subprocess.run(
        [sys.executable, "-m", "clusterdb", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """Parse the status table: cells hold no blank except the ages ("3s ago") and LAST_ERROR."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next(i for i, line in enumerate(lines) if line.startswith("CLUSTER"))
    rows = {}
    for line in lines[header + 1 :]:
        cells = AGE.sub(r"\1_ago", line).split(None, len(STATUS_HEADERS) - 1)
        row = dict(zip(STATUS_HEADERS, cells, strict=False))
        rows[row["NODE"]] = row
    return rows


@pytest.fixture
def config(tmp_path: Path, pg_cluster: Any) -> Path:
    return write_config(tmp_path / "clusterdb.toml", pg_cluster)


@pytest.fixture
def registered(config: Path, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The same config loaded in this process, for comparing with the CLI's view."""
    monkeypatch.setenv(PW_ENV, str(pg_cluster.password))
    clusterdb.load_config(str(config))
    try:
        yield "main"
    finally:
        clusterdb.unregister("main")


@pytest.mark.postgres
def test_status_shows_every_node_and_the_killed_one_down(config: Path, pg_cluster: Any) -> None:
    victim = pg_cluster.replicas[-1]
    victim.kill()
    out = run_cli(["status", "-c", str(config), "--timeout", "2"], pg_cluster.password)
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert sorted(rows) == sorted(n.name for n in pg_cluster.nodes)
    for node in pg_cluster.nodes:
        row = rows[node.name]
        assert row["CLUSTER"] == "main"
        assert row["ADDRESS"].endswith(f":{node.proxy_port}")
        if node is victim:
            assert row["STATE"] == "down", row
            assert row["LAST_ERR"].endswith("s_ago"), row
            assert row["LAST_ERROR"] != "-", row
        else:
            assert row["STATE"] == "up", row
            assert row["CHANGED"].endswith("s_ago"), row
    assert rows[pg_cluster.primary.name]["ROLE"] == "primary"
    assert rows[pg_cluster.replicas[0].name]["ROLE"] == "replica"


@pytest.mark.postgres
def test_status_json_matches_snapshot(config: Path, pg_cluster: Any, registered: str) -> None:
    out = run_cli(["status", "-c", str(config), "--json"], pg_cluster.password)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert list(doc) == ["main"]

    # The same nodes seen from this process, after a connect to each of them.
    for _ in range(3):
        clusterdb.connect(registered).close()
    mine = clusterdb.stats.snapshot()[registered].as_dict()
    theirs = doc["main"]
    assert set(theirs) == set(mine)
    assert theirs["name"] == mine["name"] == "main"
    assert theirs["driver"] == mine["driver"]
    assert [n["name"] for n in theirs["nodes"]] == [n["name"] for n in mine["nodes"]]
    node_keys = set(NodeStats.__dataclass_fields__)
    for cli_node, my_node in zip(theirs["nodes"], mine["nodes"], strict=True):
        assert set(cli_node) == node_keys
        assert cli_node["address"] == my_node["address"]
        assert cli_node["state"] == "up"
        assert cli_node["role"] in ("primary", "replica")
        assert cli_node["last_state_change_at"] is not None
        assert cli_node["connect_errors"] == 0
    roles = {n["name"]: n["role"] for n in theirs["nodes"]}
    assert roles[pg_cluster.primary.name] == "primary"


@pytest.mark.postgres
def test_status_last_ok_after_probe(config: Path, pg_cluster: Any) -> None:
    """A fresh process only probes: a probe that answered is the node's last success."""
    out = run_cli(["status", "-c", str(config)], pg_cluster.password)
    assert out.returncode == 0, out.stderr
    rows = table_rows(out.stdout)
    assert all(row["LAST_OK"].endswith("s_ago") for row in rows.values()), rows


@pytest.mark.postgres
def test_check_ok_when_healthy(config: Path, pg_cluster: Any) -> None:
    out = run_cli(["check", "-c", str(config)], pg_cluster.password)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("main: OK: primary reachable")
    assert pg_cluster.primary.name in out.stdout


@pytest.mark.postgres
def test_check_fails_without_primary(config: Path, pg_cluster: Any) -> None:
    pg_cluster.primary.kill()
    started = time.monotonic()
    out = run_cli(["check", "-c", str(config), "--timeout", "2"], pg_cluster.password)
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.startswith("main: FAIL: no reachable primary; 2 of 3 nodes up")
    # One line per node tried, saying why.
    assert f"    {pg_cluster.primary.name}: " in out.stdout
    assert "Traceback" not in out.stderr
    # Bounded by the timeout (wide margin for a loaded machine), not by a driver default.
    assert elapsed < 45


@pytest.mark.postgres
def test_watch_redraws_until_ctrl_c(config: Path, pg_cluster: Any) -> None:
    env = dict(os.environ, **{PW_ENV: str(pg_cluster.password)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdb", "status", "-c", str(config), "--watch", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        seen = 0
        deadline = time.monotonic() + 60
        while seen < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("CLUSTER"):
                seen += 1
        assert seen == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err


@pytest.mark.postgres
def test_no_secret_in_any_cli_output(tmp_path: Path, pg_cluster: Any) -> None:
    """A wrong canary password: failures everywhere, and the canary in none of the output."""
    wrong = write_config(tmp_path / "wrong.toml", pg_cluster)
    outputs = [
        run_cli(["-vv", "status", "-c", str(wrong), "--timeout", "2"], CANARY),
        run_cli(["-vv", "status", "-c", str(wrong), "--json", "--timeout", "2"], CANARY),
        run_cli(["-vv", "check", "-c", str(wrong), "--timeout", "2"], CANARY),
    ]
    assert outputs[0].returncode == 0
    assert "down" in outputs[0].stdout
    assert outputs[2].returncode == 1
    # An inline password in a config with an error elsewhere.
    inline = write_config(
        tmp_path / "inline.toml", pg_cluster, password_line=f'password = "{CANARY}"'
    )
    inline.write_text(inline.read_text().replace("connect_timeout =", "connect_timout =", 1))
    outputs.append(run_cli(["-vv", "check", "-c", str(inline)], None))
    assert outputs[-1].returncode == 2
    for out in outputs:
        assert CANARY not in out.stdout
        assert CANARY not in out.stderr
    # -vv really logged the failures (so the absence above means something).
    assert "DEBUG" in outputs[0].stderr or "WARNING" in outputs[0].stderr


SOURCES = ("password_file", "password", "dsn", "password_env")
"""Where a node's password comes from: one node each (the 4th is the primary again)."""


def write_secret_sources_config(directory: Path, cluster: Any) -> tuple[Path, dict[str, str]]:
    """A config whose nodes each get a wrong password from another source; the canaries."""
    canaries = {source: f"Canary-{source}-7e2b" for source in SOURCES}
    (directory / "secrets").mkdir(parents=True)
    (directory / "secrets" / "pw").write_text(canaries["password_file"] + "\n")
    specs = cluster.node_specs(via_proxy=True)
    specs.append({**specs[0], "name": specs[0]["name"] + "-again"})
    lines = [
        "[clusters.main]",
        'driver = "psycopg"',
        "connect_timeout = 2.0",
        f'user = "{cluster.user}"',
        f'dbname = "{cluster.dbname}"',
    ]
    for source, spec in zip(SOURCES, specs, strict=True):
        lines += ["[[clusters.main.nodes]]", f'name = "{spec["name"]}"']
        if source == "dsn":
            lines.append(
                f'dsn = "host={spec["host"]} port={spec["port"]} password={canaries["dsn"]}"'
            )
        else:
            lines += [f'host = "{spec["host"]}"', f"port = {spec['port']}"]
            value = {"password_file": "secrets/pw", "password_env": PW_ENV}.get(source)
            lines.append(f'{source} = "{value or canaries[source]}"')
    config = directory / "clusterdb.toml"
    config.write_text("\n".join(lines) + "\n")
    return config, canaries


@pytest.mark.postgres
def test_cli_output_is_scrubbed_of_every_secret_the_library_knows(
    tmp_path: Path, pg_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """password_file relative to the config (the CLI run from elsewhere), inline password,
    password in a node's DSN, password_env: each a wrong password, so every node refuses."""
    config, canaries = write_secret_sources_config(tmp_path / "conf", pg_cluster)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env_canary = canaries["password_env"]
    args = ["-c", str(config), "--timeout", "2"]
    outputs = {
        "status": run_cli(["-vv", "status", *args], env_canary, cwd=elsewhere),
        "json": run_cli(["-vv", "status", "--json", *args], env_canary, cwd=elsewhere),
        "check": run_cli(["-vv", "check", *args], env_canary, cwd=elsewhere),
    }
    broken = tmp_path / "conf" / "broken.toml"
    broken.write_text(config.read_text().replace("connect_timeout", "conect_timeout", 1))
    outputs["config error"] = run_cli(["-vv", "check", "-c", str(broken)], env_canary)

    rows = table_rows(outputs["status"].stdout)
    assert outputs["status"].returncode == 0, outputs["status"].stderr
    assert len(rows) == 4 and {row["STATE"] for row in rows.values()} == {"down"}, rows
    assert all(row["LAST_ERROR"] != "-" for row in rows.values()), rows
    assert "authentication failed" in outputs["status"].stdout
    nodes = json.loads(outputs["json"].stdout)["main"]["nodes"]
    assert [n["state"] for n in nodes] == ["down"] * 4
    assert outputs["check"].returncode == 1
    assert outputs["check"].stdout.startswith("main: FAIL: no reachable primary; 0 of 4 nodes up")
    assert outputs["check"].stdout.count("password authentication failed") >= 2
    assert outputs["config error"].returncode == 2
    assert "clusters.main.conect_timeout" in outputs["config error"].stderr
    assert "DEBUG" in outputs["check"].stderr  # -vv logged the attempts
    for what, out in outputs.items():
        for source, canary in canaries.items():
            assert canary not in out.stdout, (what, source)
            assert canary not in out.stderr, (what, source)

    # The second belt itself: the CLI scrubs its output of every one of them, the relative
    # password_file and the DSN's password included (its own reading of the file missed both).
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(PW_ENV, env_canary)
    names, secrets = cli._load(cli.build_parser().parse_args(["status", *args]))
    try:
        assert names == ["main"]
        assert set(canaries.values()) <= set(secrets)
    finally:
        clusterdb.unregister("main")


@pytest.mark.mariadb
def test_mariadb_status_and_check(tmp_path: Path, mariadb_cluster: Any) -> None:
    config = write_config(tmp_path / "mdb.toml", mariadb_cluster, driver="pymysql")
    status = run_cli(["status", "-c", str(config), "--timeout", "2"], mariadb_cluster.password)
    assert status.returncode == 0, status.stderr
    rows = table_rows(status.stdout)
    assert sorted(rows) == sorted(n.name for n in mariadb_cluster.nodes)
    assert {row["STATE"] for row in rows.values()} == {"up"}
    assert rows[mariadb_cluster.primary.name]["ROLE"] == "primary"

    check = run_cli(["check", "-c", str(config)], mariadb_cluster.password)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("main: OK: primary reachable")

    mariadb_cluster.primary.kill()
    down = run_cli(["check", "-c", str(config), "--timeout", "2"], mariadb_cluster.password)
    assert down.returncode == 1, down.stdout + down.stderr
    assert down.stdout.startswith("main: FAIL: no reachable primary")
