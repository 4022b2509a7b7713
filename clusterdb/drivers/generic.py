"""Any PEP 249 module: a DSN node is the first positional argument of ``module.connect``.

A generic driver has no connect timeout clusterdb knows of and no way to tell a node's role:
connect() still returns at its deadline, but an attempt that hangs inside the driver keeps its
(daemon) thread until the driver gives up.

sqlite3 refuses to let a connection be used outside the thread that opened it unless it was
opened with ``check_same_thread=False``; attempts run in worker threads, so clusterdb always
passes it. Its connections take no attribute and no weak reference, so unless the node's
settings name a ``factory``, they are made of a plain subclass of ``sqlite3.Connection``, which
takes both: each can then carry its node (:func:`clusterdb.node_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clusterdb.drivers.base import ConnectArgs, DriverAdapter
from clusterdb.errors import ConfigError

if TYPE_CHECKING:
    from clusterdb.config import NodeEntry

__all__ = ["GenericAdapter"]

_REQUIRED = ("connect", "Error", "OperationalError")


class GenericAdapter(DriverAdapter):
    def __init__(self, module: ModuleType) -> None:
        missing = [attr for attr in _REQUIRED if not hasattr(module, attr)]
        if missing:
            raise ConfigError(
                f"driver module {module.__name__!r} is not a PEP 249 module "
                f"(no {', '.join(missing)})",
                "driver",
            )
        self.module = module
        self.name = module.__name__
        self.operational_error = module.OperationalError
        sqlite = module.__name__ == "sqlite3"
        self._forced: dict[str, Any] = {"check_same_thread": False} if sqlite else {}
        self._defaults: dict[str, Any] = {}
        if sqlite:
            self._defaults["factory"] = type("Connection", (module.Connection,), {})

    def connect_args(self, node: NodeEntry, kwargs: Mapping[str, Any]) -> ConnectArgs:
        merged: dict[str, Any] = {**self._defaults, **kwargs, **node.params}
        if node.host is not None:
            merged["host"] = node.host
        if node.port is not None:
            merged["port"] = node.port
        merged.update(self._forced)
        return ConnectArgs((node.dsn,) if node.dsn else (), merged)

    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        if overrides:
            return self.module.connect(
                *target.args, **{**target.kwargs, **overrides, **self._forced}
            )
        return self.module.connect(*target.args, **target.kwargs)
