"""``python -m clusterdb demo --fast``: runs to the end, narrates, leaves nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterdb.testing.cleanup import tempdir_base
from clusterdb.tools.demo.script import verdict

pytestmark = pytest.mark.postgres


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (e.g. a data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
def base() -> Iterator[Path]:
    """A private base dir for the demo's data dirs; a server left behind would mention it.

    Not under pytest's tmp_path: that is private to root, and the servers may run as
    another OS user (the harness drops root).
    """
    path = Path(tempfile.mkdtemp(prefix="clusterdb-demo-test-", dir=tempdir_base()))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def demo_env(base: Path) -> dict[str, str]:
    return dict(os.environ, CLUSTERDB_TEST_TMPDIR=str(base), PYTHONUNBUFFERED="1")


def assert_nothing_left(base: Path) -> None:
    deadline = time.monotonic() + 15
    while processes_mentioning(str(base)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_mentioning(str(base)) == []
    assert list(base.iterdir()) == []


def test_demo_fast_runs_to_the_end(base: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clusterdb", "demo", "--fast"],
        capture_output=True,
        text=True,
        timeout=150,
        env=demo_env(base),
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for step in ("== 1. steady state", "== 2. ", "hangs", "== 3. ", "killed", "== 4. ", "promoted"):
        assert step in text, step
    assert "== 5. " in text
    assert "== done" in text
    assert "servers stopped" in text
    assert "(could not do that" not in text
    # Not a terminal: plain lines, no escape codes, and the live line shows where connects went.
    assert "\x1b[" not in text
    assert "reached  primary:" in text
    assert "role=any: " in text
    assert "Traceback" not in out.stderr
    assert_verdict_follows_from_counts(text)
    assert_nothing_left(base)


def assert_verdict_follows_from_counts(text: str) -> None:
    """Honesty: every step reports its stalls; the closing verdict is the one the closing
    counts give, and says "kept succeeding" only when no read failed or stalled."""
    assert text.count("   calls (connect and query) of 1 s or more: ") == 5
    totals = re.findall(
        r"role=(\S+): (\d+) calls succeeded, (\d+) failed, (\d+) stalled", text.split("== done")[1]
    )
    assert [role for role, *_ in totals] == ["primary", "prefer-replica", "any"], totals
    failed = {role: int(f) for role, _, f, _ in totals}
    stalled = {role: int(s) for role, _, _, s in totals}
    assert all(int(ok) > 0 for _, ok, _, _ in totals), totals
    last = text.split("== done")[1].strip().splitlines()[-2].strip()  # before "servers stopped"
    assert last == verdict(failed, stalled), (last, totals)
    smooth = not any(failed[r] or stalled[r] for r in ("any", "prefer-replica"))
    assert ("kept succeeding" in last) == smooth, last


@pytest.mark.parametrize(
    ("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 128 + signal.SIGTERM)]
)
def test_demo_interrupted_cleans_up(base: Path, sig: signal.Signals, status: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdb", "demo", "--fast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(base),
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("== 1."):
                break
        assert line.startswith("== 1."), line
        # The servers run now and are findable this way, so "none left" below means something.
        assert processes_mentioning(str(base))
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, err[-2000:]
    assert "servers stopped" in rest
    assert "Traceback" not in err
    assert_nothing_left(base)
