"""Binding a cluster's config to its driver: each node's connect arguments, checked once."""

from __future__ import annotations

import dataclasses

from clusterdb.config import ClusterConfig
from clusterdb.core.redact import Redactor
from clusterdb.drivers.base import ConnectArgs, DriverAdapter
from clusterdb.errors import ConfigError

__all__ = ["bind_nodes"]


def bind_nodes(config: ClusterConfig, adapter: DriverAdapter) -> tuple[ConnectArgs, ...]:
    """Each node's driver arguments, in ``config.nodes`` order.

    Raises :class:`~clusterdb.errors.ConfigError` at ``clusters.<name>.nodes[<i>]`` for the
    first node the driver refuses, its message scrubbed of the cluster's secrets (a driver's
    message about a bad DSN may quote it, password included).
    """
    bound = []
    for index, entry in enumerate(config.nodes):
        try:
            args = adapter.connect_args(entry, config.connect_kwargs)
        except Exception as exc:
            redactor = Redactor(config.secrets)
            detail = str(exc) if isinstance(exc, ConfigError) else redactor.one_line(exc)
            message = (
                f"node {entry.name!r}: the {adapter.name} driver refuses its settings: {detail}"
            )
            raise ConfigError(
                redactor.scrub(message), f"clusters.{config.name}.nodes[{index}]"
            ) from None
        if not config.options.pipeline_handshake:
            args = dataclasses.replace(args, pipeline_handshake=False)
        bound.append(args)
    return tuple(bound)
