"""Django on a clusterdb cluster: ``ENGINE = "clusterdb.django.postgresql"``.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/django_app.py

The database's nodes come from the cluster (``HOST`` and ``PORT`` stay empty); ``OPTIONS``
names the cluster and the role every connection is made for. With ``CONN_MAX_AGE`` Django keeps
connections between requests, and with ``CONN_HEALTH_CHECKS`` it asks the backend at the start
of each request whether the connection is still usable: clusterdb answers no for a connection
whose node it would no longer hand out (demoted, down, drained), and Django reconnects. A
standalone script stands in for a project here; in ``settings.py`` the dictionary is the same.
"""

from __future__ import annotations

import os

import django
from django.conf import settings

import clusterdb


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)  # before Django connects: settings.py is a good place
    settings.configure(
        DATABASES={
            "default": {
                "ENGINE": "clusterdb.django.postgresql",
                "NAME": os.environ.get("CLUSTERDB_DBNAME", "app"),
                "OPTIONS": {"cluster": cluster, "role": "primary"},
                "CONN_MAX_AGE": 60,
                "CONN_HEALTH_CHECKS": True,
            }
        },
        USE_TZ=True,
    )
    django.setup()
    from django.db import close_old_connections, connection

    for request in range(3):
        close_old_connections()  # what Django does at each request's start and end
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            (recovery,) = cursor.fetchone()
        node = clusterdb.node_of(connection.connection)
        where = "replica" if recovery else "primary"
        print(f"django: request {request + 1} on the {where}, node {node.node if node else '?'}")
    close_old_connections()
    connection.close()
    clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
