"""What the PostgreSQL and MySQL backends share: the cluster and role from OPTIONS, error
reporting, and a usability check that consults clusterdb."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.utils import DatabaseErrorWrapper

from clusterdb.core.description import WantedRole
from clusterdb.core.roles import WANTED_ROLES
from clusterdb.django.routing import current
from clusterdb.runtime import freshness, pooled
from clusterdb.runtime.cluster import Cluster
from clusterdb.runtime.connect import connect as connect_cluster

__all__ = ["OWN_OPTIONS", "ClusterBackend"]

OWN_OPTIONS = ("cluster", "role")
"""clusterdb's keys in ``OPTIONS``; the rest goes to the driver."""


class _ReportingErrorWrapper(DatabaseErrorWrapper):  # type: ignore[misc]
    """Django's error wrapper, reporting each driver error to clusterdb first."""

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        wrapper = self.wrapper
        connection = wrapper.connection
        if connection is not None and isinstance(exc_value, wrapper.Database.Error):
            pooled.report(connection, exc_value)
        super().__exit__(exc_type, exc_value, traceback)


class ClusterBackend:
    """Mixed into a Django ``DatabaseWrapper`` (listed first among its bases)."""

    settings_dict: dict[str, Any]
    connection: Any
    in_atomic_block: bool
    clusterdb_after: str | None = None
    """The token the connection was opened after (a replica alias in a routing scope)."""

    @property
    def cluster_name(self) -> str:
        name = self.settings_dict["OPTIONS"].get("cluster")
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(
                "a clusterdb backend needs OPTIONS['cluster']: the name of a registered cluster"
            )
        return name

    @property
    def cluster_role(self) -> WantedRole:
        role = self.settings_dict["OPTIONS"].get("role", "any")
        if role not in WANTED_ROLES:
            raise ImproperlyConfigured(
                f"OPTIONS['role'] must be one of {', '.join(WANTED_ROLES)}, not {role!r}"
            )
        return role  # type: ignore[no-any-return]

    def cluster_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Driver keywords for connect(): Django's, less clusterdb's own and the address."""
        if self.settings_dict.get("HOST") or self.settings_dict.get("PORT"):
            raise ImproperlyConfigured(
                "HOST and PORT must be empty with a clusterdb backend: the nodes come from "
                f"cluster {self.cluster_name!r}"
            )
        for key in (*OWN_OPTIONS, "host", "port", "unix_socket"):
            params.pop(key, None)
        return params

    def cluster_connect(self, cluster: Cluster, params: dict[str, Any]) -> Any:
        """A connection for this alias's role; for a replica role inside a routing scope
        with a token (clusterdb.django.routing), one that has applied it."""
        role = self.cluster_role
        token = current().token if role in ("replica", "prefer-replica") else None
        self.clusterdb_after = token
        if token is None:
            return connect_cluster(cluster, role, params)
        return freshness.open_replica(cluster, token, params, role)

    def node_fits(self) -> bool:
        """False when clusterdb would no longer hand this connection out (never inside a
        transaction: that is the user's)."""
        if self.connection is None:
            return False
        return self.in_atomic_block or pooled.fits(self.connection, self.cluster_role)

    @cached_property
    def wrap_database_errors(self) -> DatabaseErrorWrapper:
        return _ReportingErrorWrapper(self)
