"""Django's MySQL/MariaDB backend over a clusterdb cluster of the PyMySQL driver; see
:mod:`clusterdb.django`.

Django's MySQL backend modules import ``MySQLdb`` (mysqlclient) for constants. When mysqlclient
is not installed, PyMySQL's own stand-in is installed for them (``pymysql.install_as_MySQLdb()``,
PyMySQL's documented way to run Django). Either way this thin subclass makes everything a
connection touches PyMySQL's: connections come from clusterdb, errors are PyMySQL's classes,
values are converted by PyMySQL's converters, and ``is_usable()`` pings without PyMySQL's
reconnect (which would reconnect to the same server behind clusterdb's back).
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any

import pymysql
import pymysql.converters
from django.db import IntegrityError

if importlib.util.find_spec("MySQLdb") is None:
    pymysql.install_as_MySQLdb()

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.mysql import base
from django.db.backends.utils import typecast_time
from pymysql.constants import FIELD_TYPE

from clusterdb.django._common import ClusterBackend
from clusterdb.runtime import process

__all__ = ["CursorWrapper", "DatabaseWrapper"]

_CONVERSIONS = {**pymysql.converters.conversions, FIELD_TYPE.TIME: typecast_time}


class CursorWrapper(base.CursorWrapper):  # type: ignore[misc]
    """Django's MySQL cursor wrapper, catching PyMySQL's errors."""

    def execute(self, query: Any, args: Any = None) -> Any:
        try:
            return self.cursor.execute(query, args)
        except pymysql.OperationalError as e:
            if e.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*tuple(e.args)) from e
            raise

    def executemany(self, query: Any, args: Any) -> Any:
        try:
            return self.cursor.executemany(query, args)
        except pymysql.OperationalError as e:
            if e.args[0] in self.codes_for_integrityerror:
                raise IntegrityError(*tuple(e.args)) from e
            raise


class DatabaseWrapper(ClusterBackend, base.DatabaseWrapper):  # type: ignore[misc]
    Database = pymysql

    def get_connection_params(self) -> dict[str, Any]:
        params = self.cluster_params(super().get_connection_params())
        params["conv"] = _CONVERSIONS
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        cluster = process.get_for_driver(self.cluster_name, "pymysql", __name__)
        return self.cluster_connect(cluster, dict(conn_params))

    def create_cursor(self, name: Any = None) -> Any:
        return CursorWrapper(self.connection.cursor())

    def _rollback(self) -> None:
        with contextlib.suppress(pymysql.NotSupportedError):
            BaseDatabaseWrapper._rollback(self)

    def is_usable(self) -> bool:
        if not self.node_fits():
            return False
        try:
            self.connection.ping(reconnect=False)
        except pymysql.Error:
            return False
        return True
