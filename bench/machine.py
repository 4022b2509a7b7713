"""What the figures were measured on: CPU, load, Python, driver and server versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from pathlib import Path
from typing import Any

__all__ = ["aws_wrapper_status", "libpq_version", "load_average", "machine_info", "pkg_version"]

AWS_DIST = "aws-advanced-python-wrapper"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages (zeros where the OS cannot tell)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)
    return (round(one, 2), round(five, 2), round(fifteen, 2))


def pkg_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def libpq_version() -> str:
    import psycopg

    # pq.version() is major * 10000 + minor for libpq >= 10.
    v = psycopg.pq.version()
    return f"{v // 10000}.{v % 10000}"


def aws_wrapper_status() -> dict[str, Any]:
    """Whether the AWS Advanced Python Wrapper is importable, and what it pulled in."""
    version = pkg_version(AWS_DIST)
    if version is None:
        return {
            "installed": False,
            "status": f"did not install: not present (pip install {AWS_DIST})",
        }
    try:
        import aws_advanced_python_wrapper  # noqa: F401
    except Exception as exc:  # any import failure makes it unusable as a peer
        return {
            "installed": False,
            "version": version,
            "status": f"did not install: import failed: {type(exc).__name__}: {exc}",
        }
    closure = _closure(AWS_DIST)
    size = sum(_size(d) for d in closure)
    return {
        "installed": True,
        "version": version,
        "status": "installed",
        "distributions": sorted(closure),
        "installed_mb": round(size / 1e6, 1),
    }


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return match.group(0).lower() if match else requirement


def _closure(dist: str) -> set[str]:
    """``dist`` and every distribution it requires, transitively (extras left out)."""
    seen: set[str] = set()
    todo = [dist.lower()]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _size(dist: str) -> int:
    files = importlib.metadata.distribution(dist).files or []
    return sum(f.size or 0 for f in files)


def machine_info() -> dict[str, Any]:
    """CPU, cores, OS, Python and client driver versions (server versions are added later)."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "psycopg": pkg_version("psycopg"),
        "psycopg_impl": _psycopg_impl(),
        "libpq": libpq_version(),
        "pymysql": pkg_version("PyMySQL"),
        "aws_wrapper": aws_wrapper_status(),
    }


def _psycopg_impl() -> str:
    import psycopg

    return str(psycopg.pq.__impl__)
