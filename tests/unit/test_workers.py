"""The worker pool behind connect attempts and probes: reuse, bounds, waiting, fork."""

from __future__ import annotations

import os
import threading
import time

import pytest

from clusterdb.runtime import workers


def run_and_wait(fn: object) -> None:
    done = threading.Event()

    def job() -> None:
        try:
            fn()  # type: ignore[operator]
        finally:
            done.set()

    workers.spawn(job, name="clusterdb-test-job")
    assert done.wait(5)


def test_a_job_runs_under_its_name_and_the_worker_is_reused() -> None:
    seen: list[tuple[str, int]] = []
    for _ in range(3):
        run_and_wait(lambda: seen.append((threading.current_thread().name, threading.get_ident())))
        assert workers.wait_all(5)
    assert [name for name, _ in seen] == ["clusterdb-test-job"] * 3
    assert len({ident for _, ident in seen}) == 1  # the warm worker took every job


def test_wait_all_waits_for_running_jobs_and_is_bounded() -> None:
    gate = threading.Event()
    workers.spawn(gate.wait, 5, name="clusterdb-test-blocked")
    assert workers.wait_all(0.05) is False
    gate.set()
    assert workers.wait_all(5) is True


def test_concurrent_jobs_get_their_own_threads_and_idle_ones_are_capped() -> None:
    gate = threading.Event()
    running = threading.Semaphore(0)
    count = workers.MAX_IDLE + 8

    def job() -> None:
        running.release()
        gate.wait(5)

    for _ in range(count):
        workers.spawn(job, name="clusterdb-test-burst")
    for _ in range(count):
        assert running.acquire(timeout=5)  # all ran at once: none waited for another
    gate.set()
    assert workers.wait_all(5)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        idle = [t for t in threading.enumerate() if t.name == "clusterdb-worker"]
        if len(idle) <= workers.MAX_IDLE:
            break
        time.sleep(0.01)
    assert len(idle) <= workers.MAX_IDLE


def test_idle_workers_leave_after_the_idle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "IDLE_EXIT", 0.05)
    # A burst wider than the idle stack: every worker, old or new, runs a job and then waits
    # for the next one with the short idle time.
    gate = threading.Event()
    for _ in range(workers.MAX_IDLE + 2):
        workers.spawn(gate.wait, 5, name="clusterdb-test-hold")
    gate.set()
    assert workers.wait_all(5)

    def idle_workers() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "clusterdb-worker")

    deadline = time.monotonic() + 5
    while idle_workers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert idle_workers() == 0
    run_and_wait(lambda: None)  # and the pool starts a worker again when needed


def test_a_raising_job_is_logged_and_the_pool_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise RuntimeError("bug in a job")

    workers.spawn(boom, name="clusterdb-test-boom")
    assert workers.wait_all(5)
    assert any("clusterdb-test-boom" in r.getMessage() for r in caplog.records)
    run_and_wait(lambda: None)


def test_a_forked_child_starts_with_an_empty_pool() -> None:
    gate = threading.Event()
    workers.spawn(gate.wait, 5, name="clusterdb-test-parent")  # busy in the parent
    pid = os.fork()
    if pid == 0:
        ok = workers.wait_all(0)  # the parent's job is not the child's
        done = threading.Event()
        workers.spawn(done.set, name="clusterdb-test-child")
        ok = ok and done.wait(5)
        os._exit(0 if ok else 3)
    gate.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert workers.wait_all(5)
