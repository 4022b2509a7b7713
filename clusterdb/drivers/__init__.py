"""Driver adapters: ``get_adapter("psycopg" | "pymysql" | module)``, and the asyncio adapter
serving the same clusters: ``get_async_adapter(adapter)``.

Drivers are imported only when a cluster uses them, so ``import clusterdb`` pulls in neither
psycopg nor PyMySQL.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from clusterdb.drivers.base import ConnectArgs, DriverAdapter
from clusterdb.errors import ConfigError, InterfaceError

if TYPE_CHECKING:  # asyncio is imported by the first connect_async() only
    from clusterdb.drivers.asyncio_base import AsyncAdapter

__all__ = ["ConnectArgs", "DriverAdapter", "get_adapter", "get_async_adapter"]

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


_async_cache: dict[str, AsyncAdapter] = {}


def get_async_adapter(adapter: DriverAdapter) -> AsyncAdapter:
    """The asyncio adapter for the clusters of ``adapter`` (imported on first use): psycopg's
    own ``AsyncConnection`` for psycopg, asyncmy for PyMySQL. Raises
    :class:`~clusterdb.errors.InterfaceError` for a driver with no asyncio counterpart."""
    found = _async_cache.get(adapter.name)
    if found is None:
        found = _async_cache.setdefault(adapter.name, _build_async(adapter.name))
    return found


def _build_async(name: str) -> AsyncAdapter:
    if name not in ("psycopg", "pymysql"):
        raise InterfaceError(
            f"connect_async() serves clusters registered with driver 'psycopg' or 'pymysql', "
            f"not {name!r}: use connect()"
        )
    try:
        if name == "psycopg":
            from clusterdb.drivers.psycopg_async import PsycopgAsyncAdapter

            return PsycopgAsyncAdapter()
        from clusterdb.drivers.mysql_async import AsyncmyAdapter

        return AsyncmyAdapter()
    except ImportError as exc:
        raise InterfaceError(
            f"connect_async() needs an asyncio driver ({exc}): pip install 'clusterdb[asyncio]'"
        ) from None
