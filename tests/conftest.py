"""Suite-wide settings and the racer tests' fixtures. The harness fixtures come from the
clusterdb pytest plugin."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from hypothesis import settings

from clusterdb.runtime import process
from clusterdb.runtime.workers import MAX_IDLE

# CI (CI=true) runs the property tests on a fixed sequence of examples, so a run is
# reproducible; local runs keep drawing new examples, which is where new bugs are found.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Releases every hung attempt at the end of the test, whatever happened."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def no_thread_left() -> Iterator[None]:
    """The test ends with no attempt running once its attempts have finished, and no more
    idle workers than the pool keeps."""
    yield
    assert process.pool().wait(10), [t.name for t in threading.enumerate()]
    running = [t.name for t in threading.enumerate() if t.name.startswith("clusterdb-connect")]
    assert not running
    idle = [t for t in threading.enumerate() if t.name == "clusterdb-worker"]
    assert len(idle) <= MAX_IDLE
