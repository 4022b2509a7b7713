"""One builder of :class:`ClusterConfig` for both sources: ``register()`` keywords and TOML.

The sources differ only in how a cluster's or a node's mapping splits into clusterdb's keys
and the driver's keywords (:func:`_split`), and in how two messages name a shape; every check
after the split is shared, so an error reads the same whichever way a cluster came.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from clusterdb.config.discovery import with_discovery
from clusterdb.config.model import (
    ClusterConfig,
    ClusterOptions,
    Kwargs,
    NodeEntry,
    dsn_host_port,
    host_port,
)
from clusterdb.config.schema import (
    CLUSTER_DRIVER_KEYS,
    CLUSTER_KEYS,
    NODE_KEYS,
    NODE_OWN_KEYS,
    OPTION_KEYS,
    OPTIONS,
    PASSWORD_KEYS,
    POLICY_TYPES,
    ROOT_KEYS,
    check_keys,
    check_option,
    check_pairs,
    check_str,
    check_table,
    cluster_prefix,
    join,
    kind,
    message_of,
)
from clusterdb.config.secrets import Secrets, add_password, secrets_kept_out, take_provider
from clusterdb.config.sources import config_file, module_exists, read_config
from clusterdb.core.dsn import looks_like_dsn, parse_dsn
from clusterdb.errors import ConfigError

__all__ = [
    "KNOWN_DRIVERS",
    "Source",
    "cluster_from_kwargs",
    "load_file",
    "parse_config",
    "with_node",
]

KNOWN_DRIVERS = ("psycopg", "pymysql")
"""Driver names with a dedicated adapter; any other importable PEP 249 module name works too."""

_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class Source(enum.Enum):
    """Where a cluster definition comes from."""

    KWARGS = "register() keywords"
    """clusterdb's keys are picked out by name; every other key goes to the driver."""
    TOML = "a config file"
    """Every key must be known; driver keywords sit in ``options`` tables (and a few
    strings: ``user``, ``dbname``, ``database``, ``password``)."""


_MAPPING = {Source.KWARGS: "mapping", Source.TOML: "table"}
_NODES_SHAPE = {
    Source.KWARGS: "must be a list of node mappings or DSN strings",
    Source.TOML: "must be an array: [[clusters.NAME.nodes]] tables or DSN strings",
}


def cluster_from_kwargs(
    name: str, driver: object, nodes: Sequence[object], kwargs: Mapping[str, object]
) -> ClusterConfig:
    """The config of ``clusterdb.register(name, driver=..., nodes=[...], **kwargs)``.

    Keys of :data:`~clusterdb.config.schema.OPTION_KEYS` are clusterdb's; the rest go to the
    driver's connect(). ``nodes``: mappings (``name``, ``host``, ``port``, ``dsn``,
    ``password_env``, ``password_file``, any driver keyword) or strings (DSN, conninfo, URL,
    file path). Relative ``password_file`` paths are taken from the current directory.
    """
    secrets = Secrets()
    with secrets_kept_out(secrets, kwargs, nodes):
        prefix = cluster_prefix(name)
        own, params = _split(Source.KWARGS, kwargs, prefix, node=False)
        return _cluster(Source.KWARGS, name, prefix, driver, nodes, own, params, None, secrets)


def with_node(config: ClusterConfig, spec: object) -> ClusterConfig:
    """``config`` with one more node, last: ``spec`` is one item of register()'s ``nodes=``
    (a mapping or a DSN string), checked the same way, named the same way (a node given no
    name is named ``host:port``), its secrets added to the config's. Raises ConfigError at
    ``clusters.<name>.nodes[<i>]`` for a bad spec or a name the cluster already has."""
    secrets = Secrets()
    secrets.add_all(config.secrets)
    index = len(config.nodes)
    path = f"{join(cluster_prefix(config.name), 'nodes')}[{index}]"
    with secrets_kept_out(secrets, [spec]):
        given, entry = _node(Source.KWARGS, spec, path, None, secrets)
        name = given or _default_name(entry, index)
        for other in config.nodes:
            if other.name == name:
                raise ConfigError(
                    f"cluster {config.name!r} already has a node named {name!r} (at "
                    f"{other.address}): give the new node another name, or remove_node("
                    f"{config.name!r}, {name!r}) first",
                    join(path, "name") if given else path,
                )
        nodes = (*config.nodes, replace(entry, name=name))
        return replace(config, nodes=nodes, secrets=secrets.values())


def load_file(path: str | os.PathLike[str] | None = None) -> tuple[ClusterConfig, ...]:
    """Every cluster of a TOML config file; ``None`` reads the file named by CLUSTERDB_CONFIG.

    Relative ``password_file`` paths are taken from the config file's directory.
    """
    file = config_file(path)
    data, base = read_config(file)
    try:
        return parse_config(data, base=base)
    except ConfigError as exc:
        raise ConfigError(f"{message_of(exc)} (in {str(file)!r})", exc.path) from None


def parse_config(data: Mapping[str, object], base: Path | None = None) -> tuple[ClusterConfig, ...]:
    """Every cluster of an already parsed config document (``tomllib.load`` output).

    Relative ``password_file`` paths are taken from ``base`` (default: the current directory).
    """
    check_keys(data, ROOT_KEYS, "")
    clusters = data.get("clusters")
    if not isinstance(clusters, Mapping) or not clusters:
        raise ConfigError("no cluster defined: add a [clusters.NAME] table", "clusters")
    configs: list[ClusterConfig] = []
    earlier = Secrets()  # a cluster's error may quote another cluster's password
    with secrets_kept_out(earlier, data):
        for name, table in clusters.items():
            secrets = Secrets()
            with secrets_kept_out(secrets):
                configs.append(_cluster_from_table(name, table, base, secrets))
            earlier.add_all(secrets.values())
    return tuple(configs)


def _cluster_from_table(
    name: str, table: object, base: Path | None, secrets: Secrets
) -> ClusterConfig:
    prefix = cluster_prefix(name)
    if not isinstance(table, Mapping):
        raise ConfigError("must be a table: [clusters.NAME] with driver and nodes", prefix)
    own, params = _split(Source.TOML, table, prefix, node=False)
    if "driver" not in own:
        raise ConfigError(f"missing: name a driver ({_DRIVER_HINT})", join(prefix, "driver"))
    if "nodes" not in own:
        raise ConfigError("missing: add [[clusters.NAME.nodes]] tables", join(prefix, "nodes"))
    driver, nodes = own["driver"], own["nodes"]
    return _cluster(Source.TOML, name, prefix, driver, nodes, own, params, base, secrets)


def _split(
    source: Source, data: Mapping[str, object], path: str, *, node: bool
) -> tuple[dict[str, object], dict[str, object]]:
    """(clusterdb's keys, the driver's keywords) of a cluster's or a node's mapping."""
    if not all(isinstance(key, str) for key in data):
        raise ConfigError("keys must be strings", path)
    if source is Source.KWARGS:
        ours = NODE_OWN_KEYS if node else OPTION_KEYS
        own = {k: v for k, v in data.items() if k in ours}
        return own, {k: v for k, v in data.items() if k not in ours}
    check_keys(data, NODE_KEYS if node else CLUSTER_KEYS, path)
    moved = ("password",) if node else CLUSTER_DRIVER_KEYS
    params: dict[str, object] = {
        key: check_str(data[key], join(path, key)) for key in moved if key in data
    }
    extra = check_table(data.get("options", {}), join(path, "options"))
    for key, value in extra.items():
        also = key if key in params else None
        if key == "password" and also is None:
            also = next((k for k in PASSWORD_KEYS if k in data), None)
        if also is not None:
            raise ConfigError(
                f"given twice: also set as {join(path, also)}", join(join(path, "options"), key)
            )
        params[key] = value
    own = {k: v for k, v in data.items() if k not in moved and k != "options"}
    return own, params


def _cluster(
    source: Source,
    name: str,
    prefix: str,
    driver: object,
    nodes: object,
    own: Mapping[str, object],
    params: dict[str, object],
    base: Path | None,
    secrets: Secrets,
) -> ClusterConfig:
    """The cluster of ``own`` keys and driver ``params``."""
    provider = take_provider(own, params, prefix)
    if provider is None:
        add_password(own, params, prefix, base, secrets)
    else:
        secrets.collect(params)  # sslpassword and the like
    if isinstance(nodes, str | bytes) or not isinstance(nodes, Sequence):
        raise ConfigError(_NODES_SHAPE[source], join(prefix, "nodes"))
    options = _build_options(own, prefix)
    options = with_discovery(own, options, prefix)
    return ClusterConfig(
        name=name,
        driver=check_driver(driver, join(prefix, "driver")),
        nodes=_build_nodes(
            source, nodes, prefix, base, secrets, bool(options.patroni or options.dns)
        ),
        options=options,
        connect_kwargs=Kwargs(params),
        secrets=secrets.values(),
        password_provider=provider,
    )


# -- nodes --------------------------------------------------------------------------------------


def _build_nodes(
    source: Source,
    items: Sequence[object],
    prefix: str,
    base: Path | None,
    secrets: Secrets,
    discovered: bool = False,
) -> tuple[NodeEntry, ...]:
    """The nodes of ``items``; none is allowed when they are ``discovered`` at run time."""
    if not items and not discovered:
        raise ConfigError("no nodes: a cluster needs at least one node", join(prefix, "nodes"))
    entries: list[NodeEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"{join(prefix, 'nodes')}[{index}]"
        given, entry = _node(source, item, path, base, secrets)
        name = given or _default_name(entry, index)
        if name in seen:
            where = join(path, "name") if given else path
            other = f"{join(prefix, 'nodes')}[{seen[name]}]"
            hint = "" if given else " (set a distinct name)"
            raise ConfigError(f"duplicate node name {name!r}, also used by {other}{hint}", where)
        seen[name] = index
        entries.append(replace(entry, name=name))
    return tuple(entries)


def _node(
    source: Source, item: object, path: str, base: Path | None, secrets: Secrets
) -> tuple[str | None, NodeEntry]:
    """(the name given or None, the node without its name)."""
    if isinstance(item, str):
        if not item.strip():
            raise ConfigError("an empty string is not a node", path)
        _parse_node_dsn(item, path, secrets)
        return None, NodeEntry(name="", dsn=item)
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"a node must be a {_MAPPING[source]} or a DSN string, not {kind(item)}", path
        )
    own, params = _split(source, item, path, node=True)
    name = own.get("name")
    if name is not None:
        name = check_str(name, join(path, "name"))
        if not name.strip():
            raise ConfigError("must not be empty", join(path, "name"))
    host = own.get("host")
    if host is not None:
        host = _check_host(check_str(host, join(path, "host")), join(path, "host"))
    port = _check_port(own.get("port"), join(path, "port"))
    dsn = own.get("dsn")
    if dsn is not None:
        dsn = check_str(dsn, join(path, "dsn"))
        _parse_node_dsn(dsn, join(path, "dsn"), secrets)
    add_password(own, params, path, base, secrets)
    return name, NodeEntry(name="", host=host, port=port, dsn=dsn, params=Kwargs(params))


def _default_name(entry: NodeEntry, index: int) -> str:
    if entry.host is not None:
        return host_port(entry.host, entry.port)
    found = dsn_host_port(entry.dsn) if entry.dsn is not None else None
    if found is not None:
        return host_port(found[0], entry.port if entry.port is not None else found[1])
    return f"node{index + 1}"


def _parse_node_dsn(dsn: str, path: str, secrets: Secrets) -> None:
    if not looks_like_dsn(dsn):
        return  # a file path (sqlite3) or a driver-specific string: passed as given
    try:
        parsed = parse_dsn(dsn)
    except ConfigError as exc:
        raise ConfigError(str(exc), path) from None
    secrets.collect(parsed)
    if "," in parsed.get("host", ""):
        raise ConfigError("several hosts in one node: give each host as its own node", path)


def _check_host(host: str, path: str) -> str:
    if not host.strip():
        raise ConfigError("must not be empty", path)
    if "," in host:
        raise ConfigError("several hosts in one node: give each host as its own node", path)
    return host


def _check_port(value: object, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        hint = " (write it without quotes)" if value.strip().isdigit() else ""
        raise ConfigError(f"must be an integer from 1 to 65535, not a string{hint}", path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"must be an integer from 1 to 65535, not {kind(value)}", path)
    if not 1 <= value <= 65535:
        raise ConfigError(f"must be an integer from 1 to 65535, got {value}", path)
    return value


# -- options and driver -------------------------------------------------------------------------


def _build_options(own: Mapping[str, object], prefix: str) -> ClusterOptions:
    """The options of a cluster: policy objects given (register() only), adjusted by the
    option keys given, every value checked by the schema."""
    objects: dict[str, Any] = {}
    for key, cls in POLICY_TYPES.items():
        value = own.get(key)
        if value is not None and not isinstance(value, cls):
            raise ConfigError(
                f"must be a clusterdb.policies.{cls.__name__}, not {kind(value)}",
                join(prefix, key),
            )
        objects[key] = value if value is not None else cls()
    values: dict[str, float | bool | str] = {}
    for key, option in OPTIONS.items():
        if key in own and not (option.nullable and own[key] is None):
            values[key] = check_option(key, own[key], join(prefix, key))

    def current(key: str) -> float:
        option = OPTIONS[key]
        if key in values:
            return float(values[key])
        return float(getattr(objects[option.target], option.field)) / option.scale

    check_pairs(current, values, prefix)
    fields: dict[str, dict[str, Any]] = {"options": {}, **{key: {} for key in POLICY_TYPES}}
    for key, value in values.items():
        option = OPTIONS[key]
        fields[option.target][option.field] = (
            value if isinstance(value, bool | str) else value * option.scale
        )
    policies = {key: replace(objects[key], **fields[key]) for key in POLICY_TYPES}
    return ClusterOptions(**fields["options"], **policies)


_DRIVER_HINT = "'psycopg', 'pymysql', or the import name of a PEP 249 module such as 'sqlite3'"


def check_driver(driver: object, path: str) -> str | types.ModuleType:
    """A known driver name (lower-cased), an importable module name, or a PEP 249 module."""
    if isinstance(driver, types.ModuleType):
        if not callable(getattr(driver, "connect", None)):
            raise ConfigError(f"module {driver.__name__!r} has no connect(): not PEP 249", path)
        return driver
    if not isinstance(driver, str):
        raise ConfigError(f"must be a driver name or a module, not {kind(driver)}", path)
    if driver.lower() in KNOWN_DRIVERS:
        return driver.lower()
    if _MODULE_NAME.fullmatch(driver) and module_exists(driver):
        return driver
    close = difflib.get_close_matches(driver.lower(), [*KNOWN_DRIVERS, "sqlite3"], n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown driver {driver!r}: {hint}expected {_DRIVER_HINT}", path)
