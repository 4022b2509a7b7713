"""One server process and its descendants: start, signal the whole tree, wait.

PostgreSQL backends call ``setsid``, so signalling a process group is not enough to hang a
node: the tree is walked through ``/proc/PID/task/PID/children`` every time, after the parent
was stopped so that it cannot fork a child we would miss.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from clusterdb.testing import cleanup
from clusterdb.testing.errors import HarnessError

_PR_SET_PDEATHSIG = 1


def _children(pid: int) -> list[int]:
    # A process's children are listed per thread; servers fork from their main thread.
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (depth first), read afresh from /proc."""
    found: list[int] = []
    stack = _children(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(_children(child))
    return found


def _is_alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (dead, waiting to be reaped by someone else)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _all_stopped(pids: Sequence[int]) -> bool:
    """True when every thread of every live process in ``pids`` is stopped (state T or t)."""
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue  # gone
        for task in tasks:
            try:
                state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in ("T", "t", "Z", "X"):
                return False
    return True


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


# Resolved now, not in the forked child, where loading a library could deadlock on a lock
# another thread held at fork time.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_SIGKILL = int(signal.SIGKILL)


def _set_pdeathsig() -> None:  # pragma: no cover - runs in the forked child
    # After Popen's setuid (a credential change clears the setting), before exec.
    _prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)


class ServerProcess:
    """A server started as a direct child of this process, so that it can be ``wait()``-ed.

    Orphans are not reaped quickly on machines without an init system, and a stale
    ``postmaster.pid`` naming a zombie makes the next start fail: keeping the server as our
    own child avoids that.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        # PDEATHSIG fires when the *thread* that forked dies, so it is only safe from the
        # main thread; elsewhere the janitor process still cleans up after a hard exit.
        in_main = threading.current_thread() is threading.main_thread()
        with open(log_path, "ab") as log:
            self._popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                user=user,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                # Own session: a Ctrl-C in the terminal reaches pytest, which cleans up, and
                # not the servers, which would shut down under the harness's feet.
                start_new_session=True,
                preexec_fn=_set_pdeathsig if in_main else None,
            )
        self.pid = self._popen.pid
        self.log_path = log_path
        self.stopped = False
        cleanup.janitor().track_pid(self.pid)

    def __repr__(self) -> str:
        return f"ServerProcess(pid={self.pid}, alive={self.alive})"

    @property
    def alive(self) -> bool:
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server process only."""
        if self.alive:
            _signal(self.pid, sig)

    def stop_tree(self) -> None:
        """SIGSTOP the server and all its descendants."""
        if not self.alive:
            return
        _signal(self.pid, signal.SIGSTOP)
        # A stopped parent forks nothing new, but a child may be mid-fork: read until stable.
        seen: set[int] = set()
        while True:
            new = [p for p in descendants(self.pid) if p not in seen]
            if not new:
                break
            for pid in new:
                _signal(pid, signal.SIGSTOP)
            seen.update(new)
        # kill() returns before every thread has stopped: a statement arriving in that window
        # could still be answered. Return once the kernel shows them all stopped.
        pids = [self.pid, *seen]
        deadline = time.monotonic() + 2.0
        while not _all_stopped(pids) and time.monotonic() < deadline:
            time.sleep(0.001)
        self.stopped = True

    def continue_tree(self) -> None:
        """SIGCONT the server and all its descendants."""
        if self.alive:
            for pid in descendants(self.pid):
                _signal(pid, signal.SIGCONT)
            _signal(self.pid, signal.SIGCONT)
        self.stopped = False

    def kill_tree(self) -> None:
        """SIGKILL the server and all its descendants; return once they are all dead."""
        tree: list[int] = []
        if self.alive:
            # Stop first so the child list cannot change; after the parent dies its children
            # are re-parented and can no longer be found from it.
            _signal(self.pid, signal.SIGSTOP)
            tree = descendants(self.pid)
            for pid in tree:
                _signal(pid, signal.SIGKILL)
            _signal(self.pid, signal.SIGKILL)
        self.wait(10.0)
        self.stopped = False
        deadline = time.monotonic() + 5.0
        while any(_is_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.002)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the server to exit; True if it did."""
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        cleanup.janitor().untrack_pid(self.pid)
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until_exit(proc: ServerProcess, timeout: float, what: str) -> None:
    """Wait for ``proc`` to exit or raise a HarnessError naming ``what``."""
    if not proc.wait(timeout):
        raise HarnessError(f"{what} did not exit within {timeout:.0f} s (pid {proc.pid})")


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` until it is true, raising a HarnessError naming ``what`` at timeout.

    A HarnessError from ``check`` ends the wait; any other error (a driver's, while the server
    settles) is retried and named in the timeout's message.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    last: Exception | None = None
    while True:
        try:
            if check():
                return
        except HarnessError:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise HarnessError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)


def run(
    argv: Sequence[str],
    *,
    user: str | None = None,
    input: bytes | None = None,
    timeout: float = 120.0,
    what: str,
) -> None:
    """Run a short helper (initdb, cp, ...) and raise a HarnessError with its output on failure."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            user=user,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HarnessError(f"{what} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        out = (done.stdout + done.stderr).decode(errors="replace").strip()
        raise HarnessError(
            f"{what} failed (exit {done.returncode}, {time.monotonic() - started:.1f} s): "
            f"{' '.join(argv[:2])} ...\n{out[-3000:]}"
        )
