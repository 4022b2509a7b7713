"""Binding a cluster's config to its driver: each node's connect arguments, checked once."""

from __future__ import annotations

import dataclasses

from clusterdb.config import ClusterConfig
from clusterdb.core.redact import Redactor
from clusterdb.drivers.base import ConnectArgs, DriverAdapter
from clusterdb.errors import ConfigError

__all__ = ["CAUSAL_READS", "bind_nodes"]

CAUSAL_READS = "SET SESSION wsrep_sync_wait = 1"
"""A session's reads (SELECT, SHOW, BEGIN) wait for the node to apply every write the
cluster committed before they began (Galera's causality check; 1 = reads only)."""


def bind_nodes(config: ClusterConfig, adapter: DriverAdapter) -> tuple[ConnectArgs, ...]:
    """Each node's driver arguments, in ``config.nodes`` order.

    Raises :class:`~clusterdb.errors.ConfigError` at ``clusters.<name>.nodes[<i>]`` for the
    first node the driver refuses, its message scrubbed of the cluster's secrets (a driver's
    message about a bad DSN may quote it, password included).
    """
    _check_causal_reads(config, adapter)
    bound = []
    for index, entry in enumerate(config.nodes):
        try:
            args = adapter.connect_args(entry, config.connect_kwargs)
        except Exception as exc:
            redactor = Redactor(config.secrets)
            detail = str(exc) if isinstance(exc, ConfigError) else redactor.one_line(exc)
            raise ConfigError(
                f"node {entry.name!r}: the {adapter.name} driver refuses its settings: "
                f"{redactor.scrub(detail)}",
                f"clusters.{config.name}.nodes[{index}]",
            ) from None
        if not config.options.pipeline_handshake:
            args = dataclasses.replace(args, pipeline_handshake=False)
        if config.options.causal_reads:
            path = f"clusters.{config.name}.nodes[{index}].init_command"
            if args.kwargs.get("init_command") is not None:
                raise ConfigError(
                    "causal_reads sets init_command itself: drop this one, or drop "
                    f"causal_reads and put {CAUSAL_READS!r} in your init_command",
                    path,
                )
            args = dataclasses.replace(args, kwargs={**args.kwargs, "init_command": CAUSAL_READS})
        bound.append(args)
    return tuple(bound)


def _check_causal_reads(config: ClusterConfig, adapter: DriverAdapter) -> None:
    """``causal_reads`` is Galera's (``wsrep_sync_wait``), set through PyMySQL's keywords."""
    o = config.options
    if not o.causal_reads:
        return
    path = f"clusters.{config.name}.causal_reads"
    if adapter.name != "pymysql":
        raise ConfigError(
            f"needs a MariaDB Galera cluster (driver 'pymysql'), not the {adapter.name} driver",
            path,
        )
    if o.topology == "replication":
        raise ConfigError("needs Galera: set topology to 'galera' or 'auto'", path)
