"""Nothing survives a session: no server process, no temporary directory.

Each test runs an inner pytest session in a subprocess with ``CLUSTERDB_TEST_TMPDIR`` pointing
at a fresh directory, ends it one way or another (a failing test, SIGINT, SIGTERM, SIGKILL),
and then looks for any process running from or naming that directory and for anything left
in it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterdb.testing.cleanup import TMPDIR_ENV, tempdir_base

pytestmark = [pytest.mark.postgres, pytest.mark.mariadb]

READY_ENV = "CLUSTERDB_INNER_READY"

FAILING = """
import os
from pathlib import Path

def test_starts_clusters_then_fails(pg_cluster, mariadb_cluster):
    assert pg_cluster.execute(pg_cluster.primary, "SELECT 1") == [(1,)]
    assert mariadb_cluster.execute(mariadb_cluster.primary, "SELECT 1") == [(1,)]
    mariadb_cluster.nodes[1].hang()  # a hung node must not block the cleanup
    Path(os.environ["CLUSTERDB_INNER_READY"]).write_text("ready")
    assert False, "deliberate failure"
"""

SLEEPING = """
import os
import time
from pathlib import Path

def test_starts_a_cluster_then_waits(pg_cluster):
    pg_cluster.replicas[0].hang()
    Path(os.environ["CLUSTERDB_INNER_READY"]).write_text("ready")
    time.sleep(120)
"""


@pytest.fixture
def session_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="clusterdb-cleanup-check-", dir=tempdir_base()))
    base.chmod(0o755)  # PostgreSQL runs as another OS user when we are root
    yield base
    shutil.rmtree(base, ignore_errors=True)


def start_inner(tmp_path: Path, base: Path, source: str) -> tuple[subprocess.Popen[str], Path]:
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(source))
    ready = tmp_path / "ready"
    # Only our plugin, loaded explicitly: the inner session must not depend on what else is
    # installed.
    env = dict(
        os.environ,
        **{TMPDIR_ENV: str(base), READY_ENV: str(ready), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += ["-p", "clusterdb.testing.pytest_plugin", str(test_file)]
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, ready


def wait_ready(proc: subprocess.Popen[str], ready: Path) -> None:
    deadline = time.monotonic() + 60
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.communicate()[0] if proc.poll() is not None else ""
            proc.kill()
            pytest.fail(f"inner session did not get ready:\n{out}")
        time.sleep(0.05)


def processes_using(base: Path) -> list[str]:
    """Live processes whose command line names ``base`` or whose cwd is inside it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue  # gone, or a zombie
        if str(base) in cmdline or cwd.startswith(str(base) + "/"):
            found.append(f"{entry.name}: {cmdline.strip() or '?'} (cwd {cwd})")
    return found


def assert_nothing_left(base: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        procs = processes_using(base)
        left = sorted(os.listdir(base))
        if not procs and not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: processes {procs}, files {left}")
        time.sleep(0.05)


def test_failing_test_leaves_nothing(tmp_path: Path, session_dir: Path) -> None:
    proc, ready = start_inner(tmp_path, session_dir, FAILING)
    out = proc.communicate(timeout=120)[0]
    assert ready.exists(), out
    assert proc.returncode == 1, out
    assert "deliberate failure" in out
    # Everything was done before the session exited: the servers were our children.
    assert_nothing_left(session_dir, within=2)


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_interrupted_session_leaves_nothing(
    tmp_path: Path, session_dir: Path, sig: signal.Signals
) -> None:
    proc, ready = start_inner(tmp_path, session_dir, SLEEPING)
    wait_ready(proc, ready)
    assert any(session_dir.iterdir()), "the inner session made no temporary directory"
    assert processes_using(session_dir), "the inner session started no server"
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    if sig == signal.SIGINT:
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    else:
        assert proc.returncode == -sig, out
    # SIGKILL leaves it to PR_SET_PDEATHSIG and the janitor process, which act after we die.
    assert_nothing_left(session_dir, within=10 if sig == signal.SIGKILL else 2)
