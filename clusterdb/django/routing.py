"""Read-your-writes routing for Django: a database router and a middleware.

::

    DATABASES = {
        "default": {"ENGINE": "clusterdb.django.postgresql", "NAME": "app",
                    "OPTIONS": {"cluster": "main", "role": "primary"}},
        "replica": {"ENGINE": "clusterdb.django.postgresql", "NAME": "app",
                    "OPTIONS": {"cluster": "main", "role": "prefer-replica"}},
    }
    DATABASE_ROUTERS = ["clusterdb.django.Router"]
    MIDDLEWARE = ["clusterdb.django.ReadYourWritesMiddleware", ...]
    CLUSTERDB_ROUTER = {"primary": "default", "replica": "replica", "cookie": "clusterdb_rw"}

Writes (``db_for_write``: saves, deletes, updates, ``select_for_update()``) go to the primary
alias; reads to the replica alias, except after a write of the same request (its reads see
its rows) and until a token of the request's writes is known. The middleware carries the
token of a request's writes (``request.clusterdb_token``, and the cookie when one is named), so
that a later request of the same client reads from a replica connection opened with that
token (:mod:`clusterdb.runtime.freshness`); without a token, reads stay on the primary while
the cookie lasts (``cookie_max_age``, 10 s by default). The state of one request or unit of
work (:class:`~clusterdb.core.routing.SessionWrites`) lives in a context variable: outside a
request, use :func:`routing_scope`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connections

from clusterdb.core.routing import SessionWrites
from clusterdb.runtime import freshness

__all__ = ["ReadYourWritesMiddleware", "Router", "current", "routing_scope"]

UNSYNCED = "primary"
"""The cookie's value after writes whose token is unknown: reads go to the primary."""

_current: contextvars.ContextVar[SessionWrites | None] = contextvars.ContextVar(
    "clusterdb_django_writes", default=None
)


def _settings() -> dict[str, Any]:
    return {
        "primary": "default",
        "replica": "replica",
        "cookie": None,
        "cookie_max_age": 10,
        **getattr(settings, "CLUSTERDB_ROUTER", {}),
    }


def current() -> SessionWrites:
    """The writes of the current request (or :func:`routing_scope`); outside both, of the
    current thread or task from its first use."""
    writes = _current.get()
    if writes is None:
        writes = SessionWrites()
        _current.set(writes)
    return writes


@contextlib.contextmanager
def routing_scope(token: str | None = None) -> Iterator[SessionWrites]:
    """A unit of work with its own read-your-writes state, starting after ``token`` (a token
    of earlier writes, or :data:`UNSYNCED`)."""
    writes = SessionWrites(None if token == UNSYNCED else token)
    writes.unsynced = token == UNSYNCED
    reset = _current.set(writes)
    try:
        yield writes
    finally:
        _current.reset(reset)


class Router:
    """``DATABASE_ROUTERS = ["clusterdb.django.Router"]``: the primary alias for writes and
    migrations, the replica alias for reads (see the module)."""

    def __init__(self) -> None:
        conf = _settings()
        self.primary: str = conf["primary"]
        self.replica: str = conf["replica"]

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.replica if current().target(writes=False) == "replica" else self.primary

    def db_for_write(self, model: Any, **hints: Any) -> str:
        current().target(writes=True)
        return self.primary

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the same data on every node

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == self.primary


class ReadYourWritesMiddleware:
    """Runs each request in a :func:`routing_scope` started from the client's cookie, and
    after a request that wrote, takes the token of its writes from the primary alias's
    connection and sets the cookie (when ``CLUSTERDB_ROUTER["cookie"]`` names one)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        conf = _settings()
        self.cookie: str | None = conf["cookie"]
        self.max_age: int = conf["cookie_max_age"]
        self.primary: str = conf["primary"]
        self.replica: str = conf["replica"]

    def __call__(self, request: Any) -> Any:
        carried = request.COOKIES.get(self.cookie) if self.cookie else None
        with routing_scope(carried) as writes:
            self._replica_after(writes.token)
            request.clusterdb_token = writes.token
            response = self.get_response(request)
            if writes.wrote:
                writes.ended(committed=True)
                writes.token_taken(self._token())
                request.clusterdb_token = writes.token
                if self.cookie:
                    value = writes.token or UNSYNCED
                    response.set_cookie(self.cookie, value, max_age=self.max_age, samesite="Lax")
        return response

    def _token(self) -> str | None:
        conn = connections[self.primary].connection
        return None if conn is None else freshness.take_token(conn)

    def _replica_after(self, token: str | None) -> None:
        """A kept replica connection opened before ``token`` is closed: the next read opens
        one that has applied it."""
        if token is None:
            return
        wrapper = connections[self.replica]
        if wrapper.connection is not None and getattr(wrapper, "clusterdb_after", None) != token:
            wrapper.close()
