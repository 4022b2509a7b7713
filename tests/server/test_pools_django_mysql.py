"""clusterdb.django.mysql on MariaDB (issue 13), in a child process (Django's settings are the
process's): Django connects through clusterdb with PyMySQL, converts values with PyMySQL's
converters, maps PyMySQL's errors to Django's, and is_usable() answers as clusterdb.fits()."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from clusterdb.testing.mariadb import MariaDBCluster

pytestmark = pytest.mark.mariadb

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    from django.conf import settings
    import clusterdb

    spec = json.loads(sys.argv[1])
    clusterdb.register("dj", driver="pymysql", nodes=spec["nodes"], user=spec["user"],
                       password=spec["password"], database=spec["db"])
    settings.configure(DATABASES={"default": {
        "ENGINE": "clusterdb.django.mysql", "NAME": spec["db"],
        "OPTIONS": {"cluster": "dj", "role": "primary"}, "CONN_HEALTH_CHECKS": True,
    }}, USE_TZ=True)
    django.setup()
    from django.db import IntegrityError, connection

    out = {}
    with connection.cursor() as cur:
        cur.execute("CREATE TEMPORARY TABLE t (id INT PRIMARY KEY, at TIME, n INT NOT NULL)")
        cur.execute("INSERT INTO t VALUES (1, '01:02:03', 5)")
        cur.execute("SELECT at, @@report_host FROM t")
        at, node = cur.fetchone()
        out["time"], out["node"] = type(at).__name__, node
        try:
            cur.execute("INSERT INTO t VALUES (2, NULL, NULL)")
        except IntegrityError:
            out["null"] = "IntegrityError"
    out["tagged"] = clusterdb.node_of(connection.connection) == ("dj", node)
    out["usable"] = connection.is_usable()
    clusterdb.drain("dj", node)
    out["usable_drained"] = connection.is_usable()
    print(json.dumps(out))
    """
)


def test_django_mysql_backend_runs_on_pymysql_through_clusterdb(
    mariadb_cluster: MariaDBCluster,
) -> None:
    spec = {
        "nodes": mariadb_cluster.node_specs(),
        "user": mariadb_cluster.user,
        "password": mariadb_cluster.password,
        "db": mariadb_cluster.dbname,
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out == {
        "time": "time",  # Django's TIME typecast over PyMySQL's converters
        "node": mariadb_cluster.primary.name,
        "null": "IntegrityError",  # 1048 through the backend's PyMySQL cursor wrapper
        "tagged": True,
        "usable": True,
        "usable_drained": False,
    }
