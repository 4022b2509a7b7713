"""Driver adapters: ``get_adapter("psycopg" | "pymysql" | module)``.

Drivers are imported only when a cluster uses them, so ``import clusterdb`` pulls in neither
psycopg nor PyMySQL.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from clusterdb.drivers.base import ConnectArgs, DriverAdapter
from clusterdb.errors import ConfigError

__all__ = ["ConnectArgs", "DriverAdapter", "get_adapter"]

_KNOWN = {"psycopg": "psycopg", "pymysql": "pymysql"}
# clusterdb's own DB-API modules name the driver they wrap.
_WRAPPERS = {"clusterdb.psycopg": "psycopg", "clusterdb.pymysql": "pymysql"}

# No lock (nothing to reset in a forked child): threads building one adapter at once keep the
# first one stored.
_cache: dict[str, DriverAdapter] = {}


def get_adapter(driver: str | ModuleType) -> DriverAdapter:
    """The adapter for ``driver``: ``"psycopg"``, ``"pymysql"``, or any PEP 249 module.

    A string naming another importable module (``"sqlite3"``) is imported and used as a
    generic PEP 249 driver. Raises :class:`~clusterdb.errors.ConfigError` naming the driver.
    """
    if isinstance(driver, ModuleType):
        name = driver.__name__
    elif isinstance(driver, str) and driver:
        name = driver.strip()
    else:
        raise ConfigError(
            f"expected 'psycopg', 'pymysql' or a PEP 249 module, got {driver!r}", "driver"
        )
    name = _WRAPPERS.get(name, name)
    adapter = _cache.get(name)
    if adapter is None:
        built = _build(name, driver if isinstance(driver, ModuleType) else None)
        adapter = _cache.setdefault(name, built)
    return adapter


def _build(name: str, module: ModuleType | None) -> DriverAdapter:
    if name == "psycopg":
        from clusterdb.drivers.psycopg import PsycopgAdapter

        return PsycopgAdapter()
    if name == "pymysql":
        from clusterdb.drivers.pymysql import PyMySQLAdapter

        return PyMySQLAdapter()
    from clusterdb.drivers.generic import GenericAdapter

    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"cannot import driver {name!r} ({exc}); install it, or pass the module",
                "driver",
            ) from None
    return GenericAdapter(module)
