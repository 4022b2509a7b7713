"""Cluster definitions from ``register()`` keyword arguments or a TOML file, validated.

Both sources give the same :class:`ClusterConfig` and the same error key paths
(``clusters.main.nodes[1].port``), so a message reads the same whichever way the cluster came.
``config.example.toml`` documents every key; a test keeps it in step with the key tables.

Secrets: ``password``, ``password_env`` (the name of an environment variable) or
``password_file`` (a file whose content, minus one trailing newline, is the password), at the
cluster or the node level. Every secret value seen, also inside DSNs and ``options``, is kept
in :attr:`ClusterConfig.secrets` for the :class:`~clusterdb.core.redact.Redactor`; no message
or repr made here shows one.

Units: plain keys are seconds; keys ending in ``_ms`` are milliseconds.

    model.py     ClusterConfig, NodeEntry, ClusterOptions
    schema.py    the keys, the option table and check_option(): the one validator of options
    build.py     one builder over both sources (register() keywords, TOML)
    secrets.py   which values are secrets; keeping them out of errors
    sources.py   every read: config file, environment, password files, driver modules
"""

from __future__ import annotations

from clusterdb.config.build import (
    KNOWN_DRIVERS,
    cluster_from_kwargs,
    load_file,
    parse_config,
    with_node,
)
from clusterdb.config.model import ClusterConfig, ClusterOptions, NodeEntry
from clusterdb.config.schema import (
    CLUSTER_KEYS,
    NODE_KEYS,
    OPTION_KEYS,
    ROOT_KEYS,
    check_option,
)
from clusterdb.config.secrets import entry_secrets, known_secrets
from clusterdb.config.sources import CONFIG_ENV

__all__ = [
    "CLUSTER_KEYS",
    "CONFIG_ENV",
    "KNOWN_DRIVERS",
    "NODE_KEYS",
    "OPTION_KEYS",
    "ROOT_KEYS",
    "ClusterConfig",
    "ClusterOptions",
    "NodeEntry",
    "check_option",
    "cluster_from_kwargs",
    "entry_secrets",
    "known_secrets",
    "load_file",
    "parse_config",
    "with_node",
]
