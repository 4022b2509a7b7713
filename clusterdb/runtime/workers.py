"""A pool of warm daemon threads for clusterdb's background jobs (connect attempts the caller
does not wait for, probes), counted so that close() can wait for them within a bound.

Idle workers are reused newest first and end after ``idle_exit`` seconds, or at once when the
pool is closed. Daemon threads rather than ``concurrent.futures``: an executor's exit hook
joins its workers, so an attempt hung in a driver would block interpreter exit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["IDLE_EXIT", "MAX_IDLE", "Spawn", "WorkerPool"]

log = logging.getLogger("clusterdb")

IDLE_EXIT = 60.0
"""Seconds an idle worker waits for a job before its thread ends (the default)."""
MAX_IDLE = 16
"""Idle workers kept at most; a burst of attempts beyond it leaves no crowd of threads."""

_IDLE_NAME = "clusterdb-worker"

_Job = tuple[Callable[..., Any], tuple[Any, ...], str]


class Spawn(Protocol):
    """``spawn(target, *args, name=...)``: run ``target(*args)`` in the background."""

    def __call__(self, target: Callable[..., Any], /, *args: Any, name: str) -> None: ...


class _Worker:
    __slots__ = ("jobs", "pool", "thread")

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: end now
        self.thread = threading.Thread(target=self._run, name=_IDLE_NAME, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                if not self._run_one(self.jobs.get(timeout=self.pool.idle_exit)):
                    return  # the pool closed
            except queue.Empty:
                if self.pool.retire(self):
                    return
                continue  # handed a job just as it timed out: the job is on its way
            if not self.pool.finished(self):
                return

    def _run_one(self, job: _Job | None) -> bool:
        # Its own frame, so that an idle worker holds nothing of its last job (a cluster).
        if job is None:
            return False
        target, args, name = job
        self.thread.name = name  # stack dumps and tests tell attempts and probes apart
        try:
            target(*args)
        except BaseException:  # jobs record their own failures; this is a bug
            log.exception("clusterdb: background job %s raised", name)
        finally:
            self.thread.name = _IDLE_NAME
        return True


class WorkerPool:
    """Idle workers (a stack: the warmest first), every live worker, and the jobs in flight."""

    def __init__(self, idle_exit: float = IDLE_EXIT) -> None:
        self.idle_exit = idle_exit
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._busy = 0
        self._closed = False

    def spawn(self, target: Callable[..., Any], /, *args: Any, name: str) -> None:
        """Run ``target(*args)`` on a worker thread (named ``name`` while it runs). Raises
        RuntimeError ("can't start new thread") when no worker can be started."""
        with self._lock:
            self._busy += 1
            fresh = not self._idle
            if fresh:
                worker = _Worker(self)
                self._workers.add(worker)
            else:
                worker = self._idle.pop()
        if fresh:
            try:
                worker.thread.start()
            except BaseException:
                self._not_started(worker)
                raise
        worker.jobs.put((target, args, name))

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until no job is running; True when none is. Not from a job
        (it would wait for itself)."""
        with self._lock:
            return self._changed.wait_for(lambda: self._busy == 0, max(0.0, timeout))

    def close(self, timeout: float) -> bool:
        """End every worker: idle ones at once, busy ones when their job ends. Waits up to
        ``timeout`` s; True when no worker thread is left. Jobs spawned later still run, each
        on a thread of its own that ends with it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            threads = [w.thread for w in self._workers]
        for worker in idle:
            worker.jobs.put(None)
        me = threading.current_thread()
        for thread in threads:
            if thread is not me:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads if t is not me)

    # -- called by workers --

    def finished(self, worker: _Worker) -> bool:
        """A job ended; True when ``worker`` stays for the next one."""
        with self._lock:
            self._busy -= 1
            keep = not self._closed and len(self._idle) < MAX_IDLE
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._changed.notify_all()
        return keep

    def retire(self, worker: _Worker) -> bool:
        """An idle worker timed out; True when it may end (nobody just took it)."""
        with self._lock:
            if worker not in self._idle:
                return False
            self._idle.remove(worker)
            self._workers.discard(worker)
            return True

    def _not_started(self, worker: _Worker) -> None:
        with self._lock:
            self._busy -= 1
            self._workers.discard(worker)
            self._changed.notify_all()
