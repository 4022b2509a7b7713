"""clusterdb's own background jobs (connect attempts, probes), run on warm daemon threads and
tracked so that ``clusterdb.close()`` and interpreter exit can wait for them, within a bound.

Every connect() runs its attempts off the calling thread, so that a hung node can be hedged.
Starting a thread for each attempt cost some 70 µs measured against a 0.3 ms PyMySQL connect;
an idle worker picks a job up in a fraction of that. Idle workers are reused newest first and
leave after :data:`IDLE_EXIT` seconds, so a quiet process keeps no threads.

Daemon threads never keep a process alive, but one still inside a driver's C code while the
interpreter finalizes can crash the process at exit (seen: SIGSEGV with a probe of a dead
MariaDB node in flight). Every attempt and probe is bounded by its own timeout, so waiting a
little at exit lets almost all of them end cleanly; the bound keeps a hung node from holding
the process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["IDLE_EXIT", "MAX_IDLE", "spawn", "wait_all"]

log = logging.getLogger("clusterdb")

IDLE_EXIT = 60.0
"""Seconds an idle worker waits for a job before its thread ends."""
MAX_IDLE = 16
"""Idle workers kept at most; a burst of attempts beyond it leaves no crowd of threads."""

_Job = tuple[Callable[..., Any], tuple[Any, ...], str]


class _Worker:
    __slots__ = ("jobs", "pool", "thread")

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="clusterdb-worker", daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self._run_one(self.jobs.get(timeout=IDLE_EXIT))
            except queue.Empty:
                if self.pool.retire(self):
                    return
                continue  # handed a job just as it timed out: the job is on its way
            if not self.pool.finished(self):
                return

    def _run_one(self, job: _Job) -> None:
        # Its own frame, so that an idle worker holds nothing of its last job (a cluster).
        target, args, name = job
        self.thread.name = name  # stack dumps and tests tell attempts and probes apart
        try:
            target(*args)
        except BaseException:  # jobs record their own failures; this is a bug
            log.exception("clusterdb: background job %s raised", name)
        finally:
            self.thread.name = "clusterdb-worker"


class _Pool:
    """Idle workers (a stack: the warmest first) and a count of jobs in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle_changed = threading.Condition(self.lock)
        self.idle: list[_Worker] = []
        self.busy = 0

    def submit(self, target: Callable[..., Any], args: tuple[Any, ...], name: str) -> None:
        with self.lock:
            worker = self.idle.pop() if self.idle else None
            self.busy += 1
        if worker is None:
            worker = _Worker(self)
            try:
                worker.thread.start()
            except BaseException:  # "can't start new thread": the caller counts that
                self._done()
                raise
        worker.jobs.put((target, args, name))

    def finished(self, worker: _Worker) -> bool:
        """A job ended; True when ``worker`` stays for the next one."""
        with self.lock:
            self.busy -= 1
            keep = len(self.idle) < MAX_IDLE
            if keep:
                self.idle.append(worker)
            self.idle_changed.notify_all()
        return keep

    def retire(self, worker: _Worker) -> bool:
        """An idle worker timed out; True when it may end (nobody just took it)."""
        with self.lock:
            if worker in self.idle:
                self.idle.remove(worker)
                return True
            return False

    def _done(self) -> None:
        with self.lock:
            self.busy -= 1
            self.idle_changed.notify_all()

    def wait(self, timeout: float) -> bool:
        with self.lock:
            return self.idle_changed.wait_for(lambda: self.busy == 0, timeout)


_pool = _Pool()


def spawn(target: Callable[..., Any], *args: Any, name: str) -> None:
    """Run ``target(*args)`` on a worker thread (named ``name`` while it runs)."""
    _pool.submit(target, args, name)


def wait_all(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until no job is running; True when none is.

    Must not be called from a job itself (it would wait for itself).
    """
    return _pool.wait(max(0.0, timeout))


def _after_fork_in_child() -> None:
    # The parent's workers do not exist here, and its lock may have been held at fork time.
    global _pool
    _pool = _Pool()


os.register_at_fork(after_in_child=_after_fork_in_child)
