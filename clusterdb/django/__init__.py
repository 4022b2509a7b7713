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
"""
