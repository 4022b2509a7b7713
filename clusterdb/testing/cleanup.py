"""Nothing survives: temp dirs, atexit, SIGTERM, and a janitor process for hard exits.

Three layers, from gentle to blunt:

1. ``Cluster.stop()`` (called by fixtures and ``with`` blocks);
2. ``atexit`` and a SIGTERM/SIGHUP handler stop every cluster still running when the process
   ends without calling ``stop()`` (SIGINT already becomes ``KeyboardInterrupt``);
3. a small janitor process, started once, holding the read end of a pipe: when this process
   dies in any way (``os._exit``, SIGKILL, pytest-timeout's thread method) the pipe closes and
   the janitor kills the servers it was told about and removes the directories.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Protocol, Self

PREFIX = "clusterdb-test-"
TMPDIR_ENV = "CLUSTERDB_TEST_TMPDIR"

_JANITOR_SRC = r"""
import os, shutil, signal, sys, time
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
    signal.signal(s, signal.SIG_IGN)
def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None
def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []
pids, dirs = {}, []
for line in sys.stdin:
    op, _, arg = line.rstrip("\n").partition(" ")
    if op == "P":
        pids[int(arg)] = start_time(int(arg))
    elif op == "p":
        pids.pop(int(arg), None)
    elif op == "D":
        dirs.append(arg)
    elif op == "d" and arg in dirs:
        dirs.remove(arg)
for pid, started in pids.items():
    if started is None or start_time(pid) != started:
        continue  # gone, or the pid was reused
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        continue
    stack, tree = children(pid), []
    while stack:
        child = stack.pop()
        tree.append(child)
        stack.extend(children(child))
    for p in tree + [pid]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
def inside(pid):
    # A server whose parent died (PR_SET_PDEATHSIG) leaves its children behind, stopped
    # ones included: find them by their working directory, which is their data dir.
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return any(cwd == d or cwd.startswith(d + "/") for d in dirs)
deadline = time.monotonic() + 5
while dirs and time.monotonic() < deadline:
    strays = [int(p) for p in os.listdir("/proc") if p.isdigit() and inside(int(p))]
    if not strays:
        break
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.02)
import ctypes, glob
libc = ctypes.CDLL(None)
for d in dirs:
    # PostgreSQL's SysV segment survives a killed postmaster: its id is in postmaster.pid.
    for pidfile in glob.glob(os.path.join(d, "*", "postmaster.pid")):
        try:
            with open(pidfile) as f:
                libc.shmctl(int(f.read().splitlines()[6].split()[1]), 0, None)
        except (OSError, IndexError, ValueError):
            pass
    for _ in range(50):
        shutil.rmtree(d, ignore_errors=True)
        if not os.path.exists(d):
            break
        time.sleep(0.1)
"""


class _Janitor:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipe: IO[str] | None = None
        self._pid_owner = os.getpid()

    def _send(self, line: str) -> None:
        with self._lock:
            if self._pipe is None or self._pid_owner != os.getpid():
                # Lazily, and again in a forked child: the parent's janitor is not ours.
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-c", _JANITOR_SRC],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    text=True,
                )
                assert proc.stdin is not None
                self._pipe = proc.stdin
                self._pid_owner = os.getpid()
            with contextlib.suppress(OSError, ValueError):
                self._pipe.write(line + "\n")
                self._pipe.flush()

    def track_pid(self, pid: int) -> None:
        self._send(f"P {pid}")

    def untrack_pid(self, pid: int) -> None:
        self._send(f"p {pid}")

    def track_dir(self, path: Path) -> None:
        self._send(f"D {path}")

    def untrack_dir(self, path: Path) -> None:
        self._send(f"d {path}")


_janitor = _Janitor()


def janitor() -> _Janitor:
    """The process-wide janitor (started on first use)."""
    return _janitor


class Stoppable(Protocol):
    def _emergency_stop(self) -> None: ...


class StartStop:
    """``with cluster:`` starts it and stops it, whatever happens inside."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_live: set[Stoppable] = set()
_live_dirs: set[Path] = set()
_registry_lock = threading.Lock()
_atexit_installed = False
_signals_installed = False


def tempdir_base() -> Path:
    """Where temporary dirs go: $CLUSTERDB_TEST_TMPDIR, else /dev/shm (tmpfs), else $TMPDIR."""
    env = os.environ.get(TMPDIR_ENV)
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def make_tempdir(kind: str) -> Path:
    """A new ``clusterdb-test-<kind>-*`` directory, removed at exit whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-", dir=tempdir_base()))
    with _registry_lock:
        _live_dirs.add(path)
    _janitor.track_dir(path)
    _install_handlers()
    return path


def remove_tempdir(path: Path) -> None:
    """Remove a directory made by :func:`make_tempdir` (idempotent)."""
    shutil.rmtree(path, ignore_errors=True)
    with _registry_lock:
        _live_dirs.discard(path)
    _janitor.untrack_dir(path)


def register(obj: Stoppable) -> None:
    """Stop ``obj`` at exit or on SIGTERM if nobody did."""
    with _registry_lock:
        _live.add(obj)
    _install_handlers()


def unregister(obj: Stoppable) -> None:
    with _registry_lock:
        _live.discard(obj)


def cleanup_all() -> None:
    """Stop every registered cluster and remove every temporary dir of this process."""
    with _registry_lock:
        objs = list(_live)
        dirs = list(_live_dirs)
    for obj in objs:
        with contextlib.suppress(Exception):
            obj._emergency_stop()
    for path in dirs:
        remove_tempdir(path)


_Handler = Callable[[int, FrameType | None], object] | int | None


def _install_handlers() -> None:
    global _atexit_installed, _signals_installed
    with _registry_lock:
        if not _atexit_installed:
            _atexit_installed = True
            atexit.register(cleanup_all)
        # Signal handlers can only be set from the main thread; until then the janitor remains.
        if _signals_installed or threading.current_thread() is not threading.main_thread():
            return
        _signals_installed = True
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous: _Handler = signal.getsignal(sig)
        if previous in (signal.SIG_DFL, None):
            signal.signal(sig, _on_fatal_signal)


def _on_fatal_signal(signum: int, frame: FrameType | None) -> None:
    cleanup_all()
    # Die the way the signal would have killed us, so the exit status stays truthful.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
