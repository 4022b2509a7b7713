"""The worker pool behind connect attempts and probes: reuse, bounds, waiting, closing, fork."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from clusterdb.runtime import process
from clusterdb.runtime.workers import MAX_IDLE, WorkerPool


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool()
    yield workers
    assert workers.close(10)


def idle_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "clusterdb-worker"}


def run_and_wait(pool: WorkerPool, fn: object) -> None:
    done = threading.Event()

    def job() -> None:
        try:
            fn()  # type: ignore[operator]
        finally:
            done.set()

    pool.spawn(job, name="clusterdb-test-job")
    assert done.wait(5)


def test_a_job_runs_under_its_name_and_the_worker_is_reused(pool: WorkerPool) -> None:
    seen: list[tuple[str, int]] = []
    for _ in range(3):
        run_and_wait(
            pool, lambda: seen.append((threading.current_thread().name, threading.get_ident()))
        )
        assert pool.wait(5)
    assert [name for name, _ in seen] == ["clusterdb-test-job"] * 3
    assert len({ident for _, ident in seen}) == 1  # the warm worker took every job


def test_wait_all_waits_for_running_jobs_and_is_bounded(pool: WorkerPool) -> None:
    gate = threading.Event()
    pool.spawn(gate.wait, 5, name="clusterdb-test-blocked")
    assert pool.wait(0.05) is False
    gate.set()
    assert pool.wait(5) is True


def test_concurrent_jobs_get_their_own_threads_and_idle_ones_are_capped(pool: WorkerPool) -> None:
    gate = threading.Event()
    running = threading.Semaphore(0)
    count = MAX_IDLE + 8
    before = idle_threads()

    def job() -> None:
        running.release()
        gate.wait(5)

    for _ in range(count):
        pool.spawn(job, name="clusterdb-test-burst")
    for _ in range(count):
        assert running.acquire(timeout=5)  # all ran at once: none waited for another
    gate.set()
    assert pool.wait(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        idle = idle_threads() - before
        if len(idle) <= MAX_IDLE:
            break
        time.sleep(0.01)
    assert len(idle) <= MAX_IDLE


def test_idle_workers_leave_after_the_idle_time() -> None:
    pool = WorkerPool(idle_exit=0.05)
    before = idle_threads()
    # A burst wider than the idle stack: every worker, old or new, runs a job and then waits
    # for the next one with the short idle time.
    gate = threading.Event()
    for _ in range(MAX_IDLE + 2):
        pool.spawn(gate.wait, 5, name="clusterdb-test-hold")
    gate.set()
    assert pool.wait(5)

    def idle_workers() -> int:
        return len(idle_threads() - before)

    deadline = time.monotonic() + 5
    while idle_workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert idle_workers() == 0
    run_and_wait(pool, lambda: None)  # and the pool starts a worker again when needed


def test_a_raising_job_is_logged_and_the_pool_goes_on(
    pool: WorkerPool, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("bug in a job")

    pool.spawn(boom, name="clusterdb-test-boom")
    assert pool.wait(5)
    assert any("clusterdb-test-boom" in r.getMessage() for r in caplog.records)
    run_and_wait(pool, lambda: None)


def test_close_ends_the_idle_workers_at_once(pool: WorkerPool) -> None:
    before = idle_threads()
    gate = threading.Event()
    for _ in range(4):
        pool.spawn(gate.wait, 5, name="clusterdb-test-burst")
    gate.set()
    assert pool.wait(5)
    assert len(idle_threads() - before) == 4  # kept for the next jobs (for a minute)
    started = time.monotonic()
    assert pool.close(5)
    assert time.monotonic() - started < 0.5  # no idle timeout waited for
    assert not idle_threads() - before


def test_close_is_bounded_by_a_running_job_whose_worker_then_ends(pool: WorkerPool) -> None:
    gate = threading.Event()
    pool.spawn(gate.wait, 5, name="clusterdb-test-running")
    assert pool.close(0.05) is False  # the job still runs
    gate.set()
    assert pool.close(5)  # its worker ended with it instead of waiting for another job
    assert not [t for t in threading.enumerate() if t.name == "clusterdb-test-running"]


def test_a_job_spawned_after_close_runs_on_a_thread_that_ends_with_it(pool: WorkerPool) -> None:
    assert pool.close(5)
    before = idle_threads()
    run_and_wait(pool, lambda: None)
    assert pool.close(5)
    assert not idle_threads() - before


def test_a_forked_child_starts_with_an_empty_process_pool() -> None:
    gate = threading.Event()
    parent_pool = process.pool()
    process.spawn(gate.wait, 5, name="clusterdb-test-parent")  # busy in the parent
    pid = os.fork()
    if pid == 0:
        child_pool = process.pool()
        ok = child_pool is not parent_pool and child_pool.wait(0)  # not the parent's job
        done = threading.Event()
        process.spawn(done.set, name="clusterdb-test-child")
        ok = ok and done.wait(5)
        os._exit(0 if ok else 3)
    gate.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert process.pool().wait(5)
