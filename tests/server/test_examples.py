"""Every script in examples/ runs against the harness PostgreSQL cluster and says what it did."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.postgres

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PW_ENV = "CLUSTERDB_EXAMPLE_TEST_PASSWORD"


def example_env(pg: Any, tmp_path: Path) -> dict[str, str]:
    """Settings both ways the examples take them: CLUSTERDB_NODES & co, and a config file."""
    specs = pg.node_specs(via_proxy=True)
    config = tmp_path / "clusterdb.toml"
    lines = [
        "[clusters.main]",
        'driver = "psycopg"',
        "connect_timeout = 2.0",
        f'user = "{pg.user}"',
        f'dbname = "{pg.dbname}"',
        f'password_env = "{PW_ENV}"',
    ]
    for spec in specs:
        lines += [
            "[[clusters.main.nodes]]",
            f'name = "{spec["name"]}"',
            f'host = "{spec["host"]}"',
            f"port = {spec['port']}",
        ]
    config.write_text("\n".join(lines) + "\n")
    return dict(
        os.environ,
        CLUSTERDB_NODES=",".join(f"{s['name']}={s['host']}:{s['port']}" for s in specs),
        CLUSTERDB_USER=str(pg.user),
        CLUSTERDB_PASSWORD=str(pg.password),
        CLUSTERDB_DBNAME=str(pg.dbname),
        CLUSTERDB_CONFIG=str(config),
        CLUSTERDB_CLUSTER="main",
        **{PW_ENV: str(pg.password)},
    )


def run_example(name: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def test_every_example_is_tested() -> None:
    tested = {
        "quickstart.py",
        "sqlalchemy_engine.py",
        "psycopg_pool_fed.py",
        "django_app.py",
        "read_write_split.py",
        "asyncio_service.py",
        "routed_connection.py",
        "sqlalchemy_routing.py",
        "django_routing.py",
    }
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_quickstart(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("quickstart.py", example_env(pg_cluster, tmp_path))
    assert "connected: server port" in out
    for node in pg_cluster.nodes:
        assert f"node {node.name} " in out
    assert "state=up" in out
    assert pg_cluster.password not in out


def test_sqlalchemy_engine(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("sqlalchemy_engine.py", example_env(pg_cluster, tmp_path))
    assert "sqlalchemy: 2 rows written on the primary" in out
    assert f"sqlalchemy: that connection is on node {pg_cluster.primary.name}" in out
    assert "sqlalchemy: server version" in out


def test_django_app(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("django_app.py", example_env(pg_cluster, tmp_path))
    for request in (1, 2, 3):
        assert f"django: request {request} on the primary, node {pg_cluster.primary.name}" in out


def test_psycopg_pool_fed(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("psycopg_pool_fed.py", example_env(pg_cluster, tmp_path))
    assert "pool: 8 queries answered" in out
    assert "pool: on the primary" in out
    match = re.search(r"pool: opened (\d+) connections, clusterdb connect\(\) calls: (\d+)", out)
    assert match is not None, out
    assert int(match[1]) >= 2
    assert match[1] == match[2]
    assert f"pool: connections per node [('{pg_cluster.primary.name}', " in out


def test_asyncio_service(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("asyncio_service.py", example_env(pg_cluster, tmp_path))
    assert "service: 20 requests answered, every write on the primary" in out
    assert "service: reads from a replica" in out
    match = re.search(r"service: clusterdb connects (\d+), failures (\d+)", out)
    assert match is not None, out
    assert int(match[1]) >= 22 and match[2] == "0"  # 20 reads and at least 2 pooled


def test_read_write_split(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("read_write_split.py", example_env(pg_cluster, tmp_path))
    assert "write: on the primary" in out
    assert "read: 1 row(s) from a replica" in out


def test_read_write_split_survives_losing_every_replica(pg_cluster: Any, tmp_path: Path) -> None:
    for replica in pg_cluster.replicas:
        replica.kill()
    out = run_example("read_write_split.py", example_env(pg_cluster, tmp_path))
    assert "write: on the primary" in out
    assert "read: 1 row(s) from a primary" in out


def test_routed_connection(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("routed_connection.py", example_env(pg_cluster, tmp_path))
    assert "routed: a plain read runs on a replica" in out
    assert out.count("routed: wrote") == 5
    assert "inside a transaction, read ('changed',) on the primary" in out
    assert "routed: pinned to the primary (temporary table); reads run on the primary" in out


def test_sqlalchemy_routing(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("sqlalchemy_routing.py", example_env(pg_cluster, tmp_path))
    assert "orm: a read runs on a replica" in out
    assert "orm: after the commit the session reads ['first', 'second'] (never stale)" in out
    assert "orm: with_for_update() locked 2 rows on the primary" in out


def test_django_routing(pg_cluster: Any, tmp_path: Path) -> None:
    out = run_example("django_routing.py", example_env(pg_cluster, tmp_path))
    assert "django: request 1: 0 notes, read on the replica alias (no token)" in out
    assert "django: request 2: 1 notes, read on the default alias (with a token)" in out
    assert "django: request 3: 1 notes, read on the replica alias (with a token)" in out
