"""clusterdb.django.Router and ReadYourWritesMiddleware with real Django over real clusters,
in a child process (Django's settings are the process's): reads on the replica alias, writes
on the primary, and a client's reads after its own write never stale, with every replica
applying changes 2 s late."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from routed_support import make_table, table_name

from clusterdb.testing.cluster import Cluster
from clusterdb.testing.mariadb import MariaDBCluster
from clusterdb.testing.postgres import PostgresCluster

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import django
    from django.conf import settings
    import clusterdb

    spec = json.loads(sys.argv[1])
    clusterdb.register("dj", driver=spec["driver"], nodes=spec["nodes"], user=spec["user"],
                       password=spec["password"], **{spec["dbkey"]: spec["db"]})
    alias = lambda role: {"ENGINE": spec["engine"], "NAME": spec["db"],
                          "OPTIONS": {"cluster": "dj", "role": role}}
    settings.configure(
        DATABASES={"default": alias("primary"), "replica": alias("prefer-replica")},
        DATABASE_ROUTERS=["clusterdb.django.Router"],
        CLUSTERDB_ROUTER={"cookie": "rw", "cookie_max_age": 30},
        INSTALLED_APPS=["django.contrib.contenttypes"],
        USE_TZ=True,
    )
    django.setup()
    from django.db import connections, models
    from django.http import JsonResponse
    from django.test import RequestFactory
    from clusterdb.django import ReadYourWritesMiddleware

    class Item(models.Model):
        v = models.CharField(max_length=20)

        class Meta:
            app_label = "contenttypes"
            db_table = spec["table"]

    def whoami(alias):
        with connections[alias].cursor() as cur:
            cur.execute(spec["whoami"])
            return cur.fetchone()[0]

    def view(request):
        if request.method == "POST":
            Item.objects.create(id=int(request.POST["id"]), v="x")
        db = Item.objects.all().db
        ids = sorted(Item.objects.values_list("id", flat=True))
        return JsonResponse({"db": db, "node": whoami(db), "ids": ids})

    app = ReadYourWritesMiddleware(view)
    rf = RequestFactory()
    out = []
    cookie = None
    for step in spec["steps"]:
        request = rf.post("/", {"id": step}) if step else rf.get("/")
        if cookie:
            request.COOKIES["rw"] = cookie
        response = app(request)
        cookie = response.cookies["rw"].value if "rw" in response.cookies else cookie
        out.append({**json.loads(response.content), "cookie": cookie is not None})
    print(json.dumps(out))
    """
)


def _run(cluster: Cluster, engine: str, steps: list[int]) -> list[dict[str, Any]]:
    t = table_name()
    make_table(cluster, t)
    for replica in cluster.replicas:
        cluster.set_replication_delay(replica, 2)
    postgres = isinstance(cluster, PostgresCluster)
    spec = {
        "driver": cluster.driver,
        "engine": engine,
        "nodes": cluster.node_specs(),
        "user": cluster.user,
        "password": cluster.password,
        "db": cluster.dbname,
        "dbkey": "dbname" if postgres else "database",
        "table": t,
        "whoami": cluster.WHOAMI_SQL,
        "steps": steps,
    }
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out: list[dict[str, Any]] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


STEPS = [0, 1, 2, 3, 0, 0]  # a read, three writes, two reads: ids written, 0 for none


def _check(cluster: Cluster, out: list[dict[str, Any]]) -> None:
    primary = cluster.primary.name
    first, wrote, *after = out
    assert first["db"] == "replica" and first["node"] != primary and not first["cookie"]
    assert wrote["db"] == "default" and wrote["ids"] == [1]  # its reads see its write
    assert wrote["cookie"]
    written = [1]
    for step, request in zip(STEPS[2:], after, strict=True):  # never stale
        written += [step] if step else []
        assert request["ids"] == written, out


@pytest.mark.postgres
def test_pg_django_router_reads_own_writes(pg_cluster: PostgresCluster) -> None:
    out = _run(pg_cluster, "clusterdb.django.postgresql", STEPS)
    _check(pg_cluster, out)


@pytest.mark.mariadb
def test_mariadb_django_router_reads_own_writes(mariadb_cluster: MariaDBCluster) -> None:
    out = _run(mariadb_cluster, "clusterdb.django.mysql", STEPS)
    _check(mariadb_cluster, out)
