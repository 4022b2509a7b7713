"""Keep idle CPUs polling instead of sleeping while we measure (a PM QoS request).

On this kind of machine (a VM whose idle CPUs halt; cpuidle driver "haltpoll") waking a thread
or process on an idle CPU dominates local timings: a loopback ``SELECT 1`` took 100-150 µs
with CPUs allowed to halt and 26-38 µs with this request held, and the figures varied by ±10 %
from one connection to the next. Holding ``/dev/cpu_dma_latency`` at 0 is what latency
benchmarks (cyclictest, tuned's latency-performance profile) do: the kernel drops the request
when the file is closed, so it lasts exactly as long as the run. It needs root; without it the
run goes on and says so.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

__all__ = ["IdleControl", "cpuidle_driver"]

QOS_PATH = "/dev/cpu_dma_latency"


def cpuidle_driver() -> str:
    try:
        return Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
    except OSError:
        return "unknown"


class IdleControl:
    """Holds (or not) a zero CPU-latency request; ``held`` says which, ``status`` why."""

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self._fd: int | None = None
        self.status = "off (--cpus-may-sleep)" if not wanted else "not requested yet"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def hold(self) -> bool:
        """Request zero wake-up latency; False (with ``status`` saying why) if not possible."""
        if not self.wanted or self._fd is not None:
            return self._fd is not None
        try:
            fd = os.open(QOS_PATH, os.O_WRONLY)
        except OSError as exc:
            self.status = f"not available: {QOS_PATH}: {exc.strerror}"
            return False
        try:
            os.write(fd, struct.pack("i", 0))
        except OSError as exc:
            os.close(fd)
            self.status = f"not available: writing {QOS_PATH}: {exc.strerror}"
            return False
        self._fd = fd
        self.status = f"held: {QOS_PATH} = 0 (idle CPUs poll, do not halt)"
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> IdleControl:
        self.hold()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
