"""psycopg 3: nodes become libpq conninfo strings; the role comes free with the connection."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from clusterdb.description import Role
from clusterdb.drivers.base import ConnectArgs, DriverAdapter, ProbeResult

if TYPE_CHECKING:
    from clusterdb.config import NodeEntry

__all__ = ["PsycopgAdapter"]

# Keywords of psycopg.Connection.connect() that are Python settings, not libpq parameters.
# ``connection_class`` is clusterdb's own: the psycopg.Connection subclass to instantiate.
_PYTHON_KEYS = frozenset(
    {
        "autocommit",
        "prepare_threshold",
        "context",
        "row_factory",
        "cursor_factory",
        "connection_class",
    }
)

# psycopg's own connect() bound to any class: a Connection subclass that overrides connect()
# (clusterdb.psycopg.Connection does, for psycopg_pool) is still built by psycopg itself.
_base_connect = cast(Callable[..., Any], vars(psycopg.Connection)["connect"].__func__)

# One round trip: role, and on a replica its lag. Nothing left to replay (everything received
# is replayed) is no lag; otherwise the lag is the age of the last transaction replayed, which
# is what a reader sees (with recovery_min_apply_delay, WAL is received at once and replayed
# late). The age over-states the lag when the primary was idle before its latest write; an
# over-estimate only keeps a replica out of rotation a little longer.
_PROBE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN NULL
            WHEN pg_last_wal_receive_lsn() IS NOT NULL
             AND pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0.0
            ELSE EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
       END
"""

# libpq (and psycopg, which follows it) counts connect_timeout in whole seconds, at least 2.
_MIN_DRIVER_TIMEOUT = 2


class PsycopgAdapter(DriverAdapter):
    name = "psycopg"
    module = psycopg
    operational_error = psycopg.OperationalError
    role_is_free = True

    def connect_args(self, node: NodeEntry, kwargs: Mapping[str, Any]) -> ConnectArgs:
        python_kw = {k: v for k, v in kwargs.items() if k in _PYTHON_KEYS}
        conninfo_kw = {k: v for k, v in kwargs.items() if k not in _PYTHON_KEYS}
        # Precedence: cluster-wide kwargs < the node's DSN < the node's own keys.
        if node.dsn:
            conninfo_kw.update(conninfo_to_dict(node.dsn))
        for key, value in node.params.items():
            (python_kw if key in _PYTHON_KEYS else conninfo_kw)[key] = value
        if node.host is not None:
            conninfo_kw["host"] = node.host
        if node.port is not None:
            conninfo_kw["port"] = node.port
        # make_conninfo() validates every key against libpq: a typo fails at register time.
        return ConnectArgs((make_conninfo("", **conninfo_kw),), python_kw)

    def connect(self, target: ConnectArgs, overrides: Mapping[str, Any], timeout: float) -> Any:
        kwargs = {**target.kwargs, **overrides} if overrides else dict(target.kwargs)
        kwargs["connect_timeout"] = max(_MIN_DRIVER_TIMEOUT, math.ceil(timeout))
        cls = kwargs.pop("connection_class", psycopg.Connection)
        return _base_connect(cls, target.args[0], **kwargs)

    def detect_role(self, conn: Any) -> Role | None:
        # Reported by the server at connect time (PostgreSQL >= 14) and on every change, so
        # reading it costs no round trip. Older servers do not report it: the role stays
        # unknown here (a role="primary" connect cannot refuse a replica) and is left to the
        # monitor's probe.
        status = conn.info.parameter_status("in_hot_standby")
        if status == "on":
            return "replica"
        if status == "off":
            return "primary"
        return None

    def probe(self, conn: Any) -> ProbeResult:
        row = conn.execute(_PROBE_SQL).fetchone()
        if row is None:
            return ProbeResult(self.detect_role(conn), None)
        in_recovery, lag = row
        return ProbeResult("replica" if in_recovery else "primary", lag)
