"""Django with reads on replicas and read-your-writes across requests.

    CLUSTERDB_CONFIG=clusterdb.toml APP_DB_PASSWORD=... python examples/django_routing.py

Two aliases over one cluster (``primary`` and ``prefer-replica``), ``clusterdb.django.Router``
in ``DATABASE_ROUTERS`` and ``clusterdb.django.ReadYourWritesMiddleware`` in ``MIDDLEWARE``:
writes go to the primary alias, reads to the replica alias; after a request writes, the
middleware sets a cookie with the token of its writes, and the client's next requests read
from a replica connection that has applied it. A standalone script stands in for a project
(the requests are made with Django's RequestFactory).
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings

import clusterdb


def main(cluster: str = "main", config: str | None = None) -> None:
    clusterdb.load_config(config)
    alias = {"ENGINE": "clusterdb.django.postgresql", "NAME": os.environ.get("CLUSTERDB_DBNAME")}
    settings.configure(
        DATABASES={
            "default": {**alias, "OPTIONS": {"cluster": cluster, "role": "primary"}},
            "replica": {**alias, "OPTIONS": {"cluster": cluster, "role": "prefer-replica"}},
        },
        DATABASE_ROUTERS=["clusterdb.django.Router"],
        MIDDLEWARE=["clusterdb.django.ReadYourWritesMiddleware"],
        CLUSTERDB_ROUTER={"primary": "default", "replica": "replica", "cookie": "rw"},
        INSTALLED_APPS=["django.contrib.contenttypes"],
        USE_TZ=True,
    )
    django.setup()
    from django.db import connections, models
    from django.http import HttpRequest, HttpResponse
    from django.test import RequestFactory

    from clusterdb.django import ReadYourWritesMiddleware

    class Note(models.Model):  # type: ignore[misc]
        body = models.CharField(max_length=50)

        class Meta:
            app_label = "contenttypes"
            db_table = f"clusterdb_example_dj_{os.getpid()}"

    with connections["default"].schema_editor() as editor:
        editor.create_model(Note)

    def view(request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            Note.objects.create(body=request.POST["body"])
        count = Note.objects.count()
        return HttpResponse(f"{count} notes, read on the {Note.objects.all().db} alias")

    app = ReadYourWritesMiddleware(view)
    factory = RequestFactory()
    cookies: dict[str, Any] = {}
    try:
        for n, request in enumerate(
            [factory.get("/"), factory.post("/", {"body": "hi"}), factory.get("/")], 1
        ):
            request.COOKIES.update(cookies)
            response = app(request)
            cookies.update({k: v.value for k, v in response.cookies.items()})
            token = "with a token" if cookies else "no token"
            print(f"django: request {n}: {response.content.decode()} ({token})")
    finally:
        with connections["default"].schema_editor() as editor:
            editor.delete_model(Note)
        for conn in connections.all():
            conn.close()
        clusterdb.close()


if __name__ == "__main__":
    main(os.environ.get("CLUSTERDB_CLUSTER", "main"))
