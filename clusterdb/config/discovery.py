"""The discovery options of a cluster (``patroni``, ``dns``): checked and set on its options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from clusterdb.config.dns import check_dns
from clusterdb.config.model import ClusterOptions
from clusterdb.config.patroni import check_endpoints
from clusterdb.config.schema import join
from clusterdb.errors import ConfigError

__all__ = ["with_discovery"]


def with_discovery(
    own: Mapping[str, object], options: ClusterOptions, prefix: str
) -> ClusterOptions:
    """``options`` with the ``patroni`` URLs or the ``dns`` names of ``own`` (at most one of
    them), checked; ConfigError naming the key otherwise."""
    if own.get("patroni") is not None and own.get("dns") is not None:
        raise ConfigError("give only one of patroni, dns", join(prefix, "dns"))
    if own.get("patroni") is not None:
        urls = check_endpoints(own["patroni"], join(prefix, "patroni"))
        options = replace(options, patroni=urls)
    if own.get("dns") is not None:
        names = check_dns(own["dns"], join(prefix, "dns"))
        options = replace(
            options, dns=tuple(f"{n.host}:{n.port}" if n.port else n.host for n in names)
        )
    return options
