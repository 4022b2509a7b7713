"""PyMySQL's "preferred" TLS context, made once per process.

PyMySQL 1.2 uses TLS whenever the server offers it, with no ``ssl``/``ssl_*`` setting given
("preferred": no certificate check), and builds that context on every connect:
``ssl.create_default_context()``, which loads the system's CA bundle. That took 49-52 ms on
the 2-core AMD EPYC machine of 2026-12-03 (a local connect without it: ~0.5 ms) and depends
on nothing of the connection, so clusterdb's PyMySQL connections (sync and asyncmy) share one,
made by PyMySQL itself. An ``SSLContext`` is safe to share between threads and connections.
"""

from __future__ import annotations

import functools
import ssl

import pymysql.connections

__all__ = ["preferred_context"]


@functools.cache
def preferred_context() -> ssl.SSLContext | None:
    """The context PyMySQL builds for a connection with no SSL settings, or None when it
    builds none (no ssl module; a PyMySQL before 1.2, which has no preferred mode)."""
    made = pymysql.connections.Connection(defer_connect=True)
    if not made.ssl or getattr(made, "_ssl_required", True):
        return None
    ctx: ssl.SSLContext = made.ctx
    return ctx
