"""Django's PostgreSQL backend (psycopg 3) over a clusterdb cluster; see
:mod:`clusterdb.django`. Django's own connection pool (``OPTIONS["pool"]``) is not supported:
it would open connections without clusterdb."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import IsolationLevel

from clusterdb.django._common import ClusterBackend
from clusterdb.runtime import process

__all__ = ["DatabaseWrapper"]


class DatabaseWrapper(ClusterBackend, base.DatabaseWrapper):  # type: ignore[misc]
    def get_connection_params(self) -> dict[str, Any]:
        if self.settings_dict["OPTIONS"].get("pool"):
            raise ImproperlyConfigured(
                "OPTIONS['pool'] is not supported with clusterdb.django.postgresql: pool with "
                "CONN_MAX_AGE, or psycopg_pool over clusterdb.psycopg.Connection"
            )
        return self.cluster_params(super().get_connection_params())

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        # As Django's: the isolation level is known before autocommit is set.
        level = self.settings_dict["OPTIONS"].get("isolation_level")
        try:
            self.isolation_level = IsolationLevel(
                IsolationLevel.READ_COMMITTED if level is None else level
            )
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {level} specified. "
                "Use one of the psycopg.IsolationLevel values."
            ) from None
        cluster = process.get_for_driver(self.cluster_name, "psycopg", __name__)
        connection = self.cluster_connect(cluster, dict(conn_params))
        if level is not None:
            connection.isolation_level = self.isolation_level
        return connection

    def is_usable(self) -> bool:
        return self.node_fits() and bool(super().is_usable())
