"""Django database backends over a clusterdb cluster.

::

    DATABASES = {
        "default": {
            "ENGINE": "clusterdb.django.postgresql",   # or "clusterdb.django.mysql"
            "NAME": "app",
            "OPTIONS": {"cluster": "main", "role": "primary"},
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }

The nodes (hosts and ports) come from the cluster, registered before Django connects
(``clusterdb.load_config()`` in settings, say); ``HOST`` and ``PORT`` must be empty. ``NAME``,
``USER`` and ``PASSWORD``, when set, override the cluster's. Every connection is made by
:func:`clusterdb.connect` for ``OPTIONS["role"]`` (default ``"any"``); database errors are
reported to clusterdb (:func:`clusterdb.report_error`); ``is_usable()``, which Django calls
between requests after an error and at the start of a request with ``CONN_HEALTH_CHECKS``,
answers False for a connection clusterdb would no longer hand out (:func:`clusterdb.fits`),
so Django replaces it. A connection inside a transaction is never judged so.

Read-your-writes routing over a primary and a replica alias: :class:`Router` and
:class:`ReadYourWritesMiddleware` (:mod:`clusterdb.django.routing`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReadYourWritesMiddleware", "Router", "routing_scope"]


def __getattr__(name: str) -> Any:
    """The routing names, imported on first use (they need Django's settings)."""
    if name in __all__:
        from clusterdb.django import routing

        return getattr(routing, name)
    raise AttributeError(f"module 'clusterdb.django' has no attribute {name!r}")
