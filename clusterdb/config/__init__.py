"""Cluster definitions from ``register()`` keyword arguments or a TOML file, validated.

Both sources give the same :class:`ClusterConfig` and the same error key paths
(``clusters.main.nodes[1].port``), so a message reads the same whichever way the cluster came.
``config.example.toml`` documents every key; the key tables here (:data:`CLUSTER_KEYS`,
:data:`NODE_KEYS`) are what the parser accepts, and a test keeps the two in step.

Secrets: ``password``, ``password_env`` (the name of an environment variable) or
``password_file`` (a file whose content, minus one trailing newline, is the password), at the
cluster or the node level. Every secret value seen, also inside DSNs and ``options``, is kept
in :attr:`ClusterConfig.secrets` for the :class:`~clusterdb.redact.Redactor`; no message or
repr made here shows one.

Units: plain keys are seconds; keys ending in ``_ms`` are milliseconds.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import math
import os
import re
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from clusterdb.core.dsn import looks_like_dsn, parse_dsn
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy
from clusterdb.core.redact import Redactor, is_secret_key
from clusterdb.errors import ConfigError

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
    "cluster_from_kwargs",
    "load_file",
    "parse_config",
]

CONFIG_ENV = "CLUSTERDB_CONFIG"
"""Environment variable naming the default config file."""

KNOWN_DRIVERS = ("psycopg", "pymysql")
"""Driver names with a dedicated adapter; any other importable PEP 249 module name works too."""

# key -> (policy, field, scale to seconds or to the field's unit, lowest value, lowest allowed?)
_NUMBERS: Mapping[str, tuple[str, str, float, float, bool]] = {
    "connect_timeout": ("options", "connect_timeout", 1.0, 0.0, False),
    "max_lag": ("options", "max_lag", 1.0, 0.0, True),
    "heartbeat": ("options", "heartbeat", 1.0, 0.0, False),
    "latency_window_ms": ("selection", "window_ms", 1.0, 0.0, True),
    "latency_window_ratio": ("selection", "window_ratio", 1.0, 0.0, True),
    "latency_weight_exponent": ("selection", "weight_exponent", 1.0, 0.0, True),
    "hedge_multiplier": ("hedge", "multiplier", 1.0, 0.0, False),
    "hedge_min_ms": ("hedge", "min_delay", 0.001, 0.0, True),
    "hedge_max_ms": ("hedge", "max_delay", 0.001, 0.0, True),
    "hedge_unknown_ms": ("hedge", "unknown_delay", 0.001, 0.0, True),
    "backoff_initial": ("backoff", "initial", 1.0, 0.0, False),
    "backoff_factor": ("backoff", "factor", 1.0, 1.0, True),
    "backoff_cap": ("backoff", "cap", 1.0, 0.0, False),
    "backoff_jitter": ("backoff", "jitter", 1.0, 0.0, True),
}
_POLICY_OBJECTS: Mapping[str, type] = {
    "selection": SelectionPolicy,
    "hedge": HedgePolicy,
    "backoff": Backoff,
}
_PASSWORD_KEYS = ("password", "password_env", "password_file")
_PASSWORD_REFERENCES = frozenset({"password_env", "password_file"})

_FLAGS = ("monitor", "pipeline_handshake")

OPTION_KEYS: frozenset[str] = frozenset(
    {*_NUMBERS, *_FLAGS, "password_env", "password_file", *_POLICY_OBJECTS}
)
"""clusterdb's own ``register()`` keywords; every other keyword goes to the driver's connect().

``connect_timeout``, ``max_lag``, ``heartbeat``, ``backoff_initial``, ``backoff_cap``:
seconds; ``latency_window_ms``, ``hedge_min_ms``, ``hedge_max_ms``, ``hedge_unknown_ms``:
milliseconds; ``latency_window_ratio``, ``latency_weight_exponent``, ``hedge_multiplier``,
``backoff_factor``, ``backoff_jitter``: plain numbers; ``monitor``, ``pipeline_handshake``:
bool; ``password_env``, ``password_file``: where the password comes from; ``selection``,
``hedge``, ``backoff``: whole policy objects (the number keys above then adjust them).
"""

ROOT_KEYS: frozenset[str] = frozenset({"clusters"})
"""Keys of the top level of a config file."""
CLUSTER_KEYS: frozenset[str] = frozenset(
    {"driver", "nodes", "options", "user", "dbname", "database", *_FLAGS, *_NUMBERS}
    | set(_PASSWORD_KEYS)
)
"""Keys of a ``[clusters.NAME]`` table."""
NODE_KEYS: frozenset[str] = frozenset({"name", "host", "port", "dsn", "options", *_PASSWORD_KEYS})
"""Keys of a ``[[clusters.NAME.nodes]]`` table."""

_OBJECT_NODE_KEYS = frozenset({"name", "host", "port", "dsn", "password_env", "password_file"})
"""Keys of a register() node mapping that are clusterdb's; the rest go to the driver."""

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class _Kwargs(Mapping[str, object]):
    """A read-only mapping whose repr shows ``***`` for secret keys."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, object] = types.MappingProxyType({})) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        return dict(self._data) == other if isinstance(other, Mapping) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data)))

    def __repr__(self) -> str:
        shown = {k: "***" if is_secret_key(k) else v for k, v in self._data.items()}
        return Redactor([str(v) for k, v in self._data.items() if is_secret_key(k)]).scrub(
            repr(shown)
        )


@dataclass(frozen=True)
class NodeEntry:
    """One node as the user gave it. Its repr never shows a secret value."""

    name: str
    host: str | None = None
    port: int | None = None
    dsn: str | None = None
    """The raw string when the node was given as a DSN, conninfo, URL or path (sqlite3)."""
    params: Mapping[str, object] = field(default_factory=_Kwargs)
    """Other per-node keyword arguments for the driver's connect()."""

    @property
    def address(self) -> str:
        """``host:port`` (or host, or the DSN's host:port, or a path); never a password."""
        if self.host is not None:
            return _host_port(self.host, self.port)
        if self.dsn is not None:
            return _dsn_address(self.dsn, self.port)
        for key in ("database", "dbname", "db"):
            value = self.params.get(key)
            if isinstance(value, str) and value:
                return value
        return ""

    def __repr__(self) -> str:
        params = self.params if isinstance(self.params, _Kwargs) else _Kwargs(self.params)
        return f"NodeEntry(name={self.name!r}, address={self.address!r}, params={params!r})"


def _host_port(host: str, port: int | str | None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("/") else host
    return shown if port is None or port == "" else f"{shown}:{port}"


def _dsn_address(dsn: str, port: int | None) -> str:
    found = _dsn_host_port(dsn)
    if found is not None:
        return _host_port(found[0], port if port is not None else found[1])
    return Redactor().scrub(dsn)


def _dsn_host_port(dsn: str) -> tuple[str, str | None] | None:
    """The host and port of a conninfo or URL; None for a path or a DSN with no host."""
    if not looks_like_dsn(dsn):
        return None
    try:
        parsed = parse_dsn(dsn)
    except ConfigError:
        return None
    host = parsed.get("host")
    return (host, parsed.get("port")) if host else None


@dataclass(frozen=True)
class ClusterOptions:
    """clusterdb's own settings of one cluster (not passed to the driver)."""

    connect_timeout: float = 5.0
    """Overall deadline of one connect(), seconds (sub-second allowed)."""
    max_lag: float | None = None
    """Replicas lagging more (seconds) are not chosen for "replica" / "prefer-replica"."""
    heartbeat: float = 5.0
    """Seconds between two probes of a healthy node."""
    monitor: bool = True
    """Run the background monitor for this cluster."""
    pipeline_handshake: bool = True
    """PyMySQL: send ``SET NAMES`` (and ``SET AUTOCOMMIT`` when needed) in the same write as
    the handshake response once a server is known to authenticate in one step."""
    selection: SelectionPolicy = field(default_factory=SelectionPolicy)
    hedge: HedgePolicy = field(default_factory=HedgePolicy)
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        for key in ("connect_timeout", "heartbeat", "max_lag"):
            value = getattr(self, key)
            if value is not None:
                _check_number(value, key, *_NUMBERS[key][3:])


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster, validated. Its repr never shows a secret value."""

    name: str
    driver: str | types.ModuleType
    """"psycopg", "pymysql", another PEP 249 module's import name ("sqlite3"), or a module."""
    nodes: tuple[NodeEntry, ...]
    options: ClusterOptions = field(default_factory=ClusterOptions)
    connect_kwargs: Mapping[str, object] = field(default_factory=_Kwargs)
    """Keyword arguments for every driver connect() (user, dbname, password, ...)."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Every secret value seen (passwords), for the Redactor."""

    def __repr__(self) -> str:
        kwargs = self.connect_kwargs
        shown = kwargs if isinstance(kwargs, _Kwargs) else _Kwargs(kwargs)
        driver = self.driver if isinstance(self.driver, str) else self.driver.__name__
        text = (
            f"ClusterConfig(name={self.name!r}, driver={driver!r}, nodes={self.nodes!r}, "
            f"options={self.options!r}, connect_kwargs={shown!r})"
        )
        return Redactor(self.secrets).scrub(text)


# -- register() ------------------------------------------------------------------------------


def cluster_from_kwargs(
    name: str, driver: object, nodes: Sequence[object], kwargs: Mapping[str, object]
) -> ClusterConfig:
    """The config of ``clusterdb.register(name, driver=..., nodes=[...], **kwargs)``.

    Keys of :data:`OPTION_KEYS` are clusterdb's; the rest go to the driver's connect().
    ``nodes``: mappings (``name``, ``host``, ``port``, ``dsn``, ``password_env``,
    ``password_file``, any driver keyword) or strings (DSN, conninfo, URL, file path).
    Relative ``password_file`` paths are taken from the current directory.
    """
    prefix = _cluster_prefix(name)
    secrets = _Secrets()
    with _secrets_kept_out(secrets, kwargs, nodes):
        return _from_kwargs(name, prefix, driver, nodes, kwargs, secrets)


def _from_kwargs(
    name: str,
    prefix: str,
    driver: object,
    nodes: Sequence[object],
    kwargs: Mapping[str, object],
    secrets: _Secrets,
) -> ClusterConfig:
    own = {k: v for k, v in kwargs.items() if k in OPTION_KEYS}
    passthrough = {k: v for k, v in kwargs.items() if k not in OPTION_KEYS}
    password = _resolve_password(own, passthrough, prefix, Path.cwd(), secrets)
    if password is not None:
        passthrough["password"] = password
    secrets.collect(passthrough)
    if isinstance(nodes, (str, bytes)) or not isinstance(nodes, Sequence):
        raise ConfigError("must be a list of node mappings or DSN strings", _join(prefix, "nodes"))
    entries = _build_nodes(nodes, prefix, Path.cwd(), secrets, _node_from_object)
    return ClusterConfig(
        name=name,
        driver=_check_driver(driver, _join(prefix, "driver")),
        nodes=entries,
        options=_build_options(own, prefix, allow_objects=True),
        connect_kwargs=_Kwargs(passthrough),
        secrets=secrets.values(),
    )


def _node_from_object(
    item: object, path: str, base: Path, secrets: _Secrets
) -> tuple[str | None, NodeEntry]:
    if isinstance(item, str):
        return None, _node_from_dsn(item, path, secrets)
    if not isinstance(item, Mapping):
        raise ConfigError(
            f"a node must be a mapping or a DSN string, not {type(item).__name__}", path
        )
    data = dict(item)
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError("node keys must be strings", path)
    params = {k: v for k, v in data.items() if k not in _OBJECT_NODE_KEYS}
    password = _resolve_password(data, params, path, base, secrets)
    if password is not None:
        params["password"] = password
    return _node_from_parts(data, params, path, secrets)


# -- config files ------------------------------------------------------------------------------


def load_file(path: str | os.PathLike[str] | None = None) -> tuple[ClusterConfig, ...]:
    """Every cluster of a TOML config file; ``None`` reads the file named by CLUSTERDB_CONFIG.

    Relative ``password_file`` paths are taken from the config file's directory.
    """
    if path is None:
        path = os.environ.get(CONFIG_ENV) or None
        if path is None:
            raise ConfigError(
                f"no config file given: pass a path to load_config(path) or set {CONFIG_ENV}"
            )
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(file)!r} is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from None
    try:
        return parse_config(data, base=file.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{_message_of(exc)} (in {str(file)!r})", exc.path) from None


def parse_config(data: Mapping[str, object], base: Path | None = None) -> tuple[ClusterConfig, ...]:
    """Every cluster of an already parsed config document (``tomllib.load`` output)."""
    base = base if base is not None else Path.cwd()
    _check_keys(data, ROOT_KEYS, "")
    clusters = data.get("clusters")
    if not isinstance(clusters, Mapping) or not clusters:
        raise ConfigError("no cluster defined: add a [clusters.NAME] table", "clusters")
    configs = []
    for name, table in clusters.items():
        secrets = _Secrets()
        with _secrets_kept_out(secrets, table):
            configs.append(_cluster_from_table(name, table, base, secrets))
    return tuple(configs)


def _cluster_from_table(name: str, table: object, base: Path, secrets: _Secrets) -> ClusterConfig:
    prefix = _cluster_prefix(name)
    if not isinstance(table, Mapping):
        raise ConfigError("must be a table: [clusters.NAME] with driver and nodes", prefix)
    _check_keys(table, CLUSTER_KEYS, prefix)
    if "driver" not in table:
        raise ConfigError(f"missing: name a driver ({_driver_hint()})", _join(prefix, "driver"))
    if "nodes" not in table:
        raise ConfigError("missing: add [[clusters.NAME.nodes]] tables", _join(prefix, "nodes"))
    kwargs: dict[str, object] = {}
    for key in ("user", "dbname", "database", "password"):
        if key in table:
            kwargs[key] = _check_str(table[key], _join(prefix, key))
    extra = _table(table.get("options", {}), _join(prefix, "options"))
    for key, value in extra.items():
        if key in kwargs or (key == "password" and _given_password_key(table)):
            raise ConfigError(
                f"given twice: also set as {_join(prefix, _given_password_key(table) or key)}",
                _join(_join(prefix, "options"), key),
            )
        kwargs[key] = value
    password = _resolve_password(table, kwargs, prefix, base, secrets)
    if password is not None:
        kwargs["password"] = password
    secrets.collect(kwargs)
    nodes = table["nodes"]
    if not isinstance(nodes, list):
        raise ConfigError(
            "must be an array: [[clusters.NAME.nodes]] tables or DSN strings",
            _join(prefix, "nodes"),
        )
    return ClusterConfig(
        name=name,
        driver=_check_driver(table["driver"], _join(prefix, "driver")),
        nodes=_build_nodes(nodes, prefix, base, secrets, _node_from_toml),
        options=_build_options(table, prefix, allow_objects=False),
        connect_kwargs=_Kwargs(kwargs),
        secrets=secrets.values(),
    )


def _node_from_toml(
    item: object, path: str, base: Path, secrets: _Secrets
) -> tuple[str | None, NodeEntry]:
    if isinstance(item, str):
        return None, _node_from_dsn(item, path, secrets)
    if not isinstance(item, Mapping):
        raise ConfigError("a node must be a table or a DSN string", path)
    _check_keys(item, NODE_KEYS, path)
    params = dict(_table(item.get("options", {}), _join(path, "options")))
    if "password" in params and _given_password_key(item):
        raise ConfigError(
            f"given twice: also set as {_join(path, _given_password_key(item) or '')}",
            _join(_join(path, "options"), "password"),
        )
    password = _resolve_password(item, params, path, base, secrets)
    if password is not None:
        params["password"] = password
    return _node_from_parts(item, params, path, secrets)


# -- nodes --------------------------------------------------------------------------------------

_NodeReader = Callable[[object, str, Path, "_Secrets"], tuple[str | None, NodeEntry]]


def _build_nodes(
    items: Sequence[object], prefix: str, base: Path, secrets: _Secrets, read: _NodeReader
) -> tuple[NodeEntry, ...]:
    if not items:
        raise ConfigError("no nodes: a cluster needs at least one node", _join(prefix, "nodes"))
    entries: list[NodeEntry] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"{_join(prefix, 'nodes')}[{index}]"
        given, entry = read(item, path, base, secrets)
        name = given or _default_name(entry, index)
        if name in seen:
            where = _join(path, "name") if given else path
            other = f"{_join(prefix, 'nodes')}[{seen[name]}]"
            hint = "" if given else " (set a distinct name)"
            raise ConfigError(f"duplicate node name {name!r}, also used by {other}{hint}", where)
        seen[name] = index
        entries.append(replace(entry, name=name))
    return tuple(entries)


def _default_name(entry: NodeEntry, index: int) -> str:
    if entry.host is not None:
        return _host_port(entry.host, entry.port)
    found = _dsn_host_port(entry.dsn) if entry.dsn is not None else None
    if found is not None:
        return _host_port(found[0], entry.port if entry.port is not None else found[1])
    return f"node{index + 1}"


def _node_from_parts(
    data: Mapping[str, object], params: dict[str, object], path: str, secrets: _Secrets
) -> tuple[str | None, NodeEntry]:
    name = data.get("name")
    if name is not None:
        name = _check_str(name, _join(path, "name"))
        if not name.strip():
            raise ConfigError("must not be empty", _join(path, "name"))
    host = data.get("host")
    if host is not None:
        host = _check_host(_check_str(host, _join(path, "host")), _join(path, "host"))
    port = _check_port(data.get("port"), _join(path, "port"))
    dsn = data.get("dsn")
    if dsn is not None:
        dsn = _check_str(dsn, _join(path, "dsn"))
        _parse_node_dsn(dsn, _join(path, "dsn"), secrets)
    secrets.collect(params)
    entry = NodeEntry(name="", host=host, port=port, dsn=dsn, params=_Kwargs(params))
    return name, entry


def _node_from_dsn(dsn: str, path: str, secrets: _Secrets) -> NodeEntry:
    if not dsn.strip():
        raise ConfigError("an empty string is not a node", path)
    _parse_node_dsn(dsn, path, secrets)
    return NodeEntry(name="", dsn=dsn)


def _parse_node_dsn(dsn: str, path: str, secrets: _Secrets) -> None:
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
        raise ConfigError(f"must be an integer from 1 to 65535, not {_kind(value)}", path)
    if not 1 <= value <= 65535:
        raise ConfigError(f"must be an integer from 1 to 65535, got {value}", path)
    return value


# -- options ------------------------------------------------------------------------------------


def _build_options(
    source: Mapping[str, object], prefix: str, *, allow_objects: bool
) -> ClusterOptions:
    policies: dict[str, object] = {}
    if allow_objects:
        for key, cls in _POLICY_OBJECTS.items():
            value = source.get(key)
            if value is not None and not isinstance(value, cls):
                raise ConfigError(
                    f"must be a clusterdb.policies.{cls.__name__}, not {_kind(value)}",
                    _join(prefix, key),
                )
            policies[key] = value if value is not None else cls()
    else:
        policies = {key: cls() for key, cls in _POLICY_OBJECTS.items()}
    changes: dict[str, dict[str, object]] = {"options": {}, "selection": {}, "hedge": {}}
    changes["backoff"] = {}
    for key, (target, attr, scale, low, inclusive) in _NUMBERS.items():
        if key not in source or (key == "max_lag" and source[key] is None):
            continue
        value = _check_number(source[key], _join(prefix, key), low, inclusive)
        changes[target][attr] = value * scale
    for key in _FLAGS:
        if key in source:
            flag = source[key]
            if not isinstance(flag, bool):
                raise ConfigError(f"must be true or false, not {_kind(flag)}", _join(prefix, key))
            changes["options"][key] = flag
    _check_pairs(policies, changes, source, prefix)
    built: dict[str, object] = {}
    for key in _POLICY_OBJECTS:
        try:
            built[key] = replace(policies[key], **changes[key])  # type: ignore[type-var]
        except ValueError as exc:
            raise ConfigError(str(exc), prefix) from None
    return ClusterOptions(**changes["options"], **built)  # type: ignore[arg-type]


_PAIRS = (
    ("hedge", "min_delay", "max_delay", "hedge_min_ms", "hedge_max_ms", 0.001),
    ("backoff", "initial", "cap", "backoff_initial", "backoff_cap", 1.0),
)


def _check_pairs(
    policies: Mapping[str, object],
    changes: Mapping[str, Mapping[str, object]],
    source: Mapping[str, object],
    prefix: str,
) -> None:
    """A lower bound above its upper bound, blamed on the key the user gave."""
    for policy, low_attr, high_attr, low_key, high_key, scale in _PAIRS:
        new = changes[policy]
        low = new.get(low_attr, getattr(policies[policy], low_attr))
        high = new.get(high_attr, getattr(policies[policy], high_attr))
        assert isinstance(low, float) and isinstance(high, float)
        if low > high:
            blamed = high_key if high_key in source else low_key
            raise ConfigError(
                f"{high_key} ({high / scale:g}) must be >= {low_key} ({low / scale:g})",
                _join(prefix, blamed),
            )


def _check_number(value: object, path: str, low: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"must be a number, not {_kind(value)}", path)
    if not math.isfinite(value):
        raise ConfigError("must be a finite number", path)
    if value < low or (value == low and not inclusive):
        op = ">=" if inclusive else ">"
        raise ConfigError(f"must be {op} {low:g}, got {value:g}", path)
    if path.endswith("backoff_jitter") and value >= 1:
        raise ConfigError(f"must be < 1 (a fraction), got {value:g}", path)
    return float(value)


def _check_driver(driver: object, path: str) -> str | types.ModuleType:
    if isinstance(driver, types.ModuleType):
        if not callable(getattr(driver, "connect", None)):
            raise ConfigError(f"module {driver.__name__!r} has no connect(): not PEP 249", path)
        return driver
    if not isinstance(driver, str):
        raise ConfigError(f"must be a driver name or a module, not {_kind(driver)}", path)
    if driver.lower() in KNOWN_DRIVERS:
        return driver.lower()
    if _MODULE_NAME.fullmatch(driver) and importlib.util.find_spec(driver.split(".")[0]):
        return driver
    close = difflib.get_close_matches(driver.lower(), [*KNOWN_DRIVERS, "sqlite3"], n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"unknown driver {driver!r}: {hint}expected {_driver_hint()}", path)


def _driver_hint() -> str:
    return "'psycopg', 'pymysql', or the import name of a PEP 249 module such as 'sqlite3'"


# -- passwords ----------------------------------------------------------------------------------


def _message_of(exc: ConfigError) -> str:
    """The message of ``exc`` without the ``path: `` prefix ConfigError adds."""
    message = str(exc.args[0]) if exc.args else ""
    prefix = f"{exc.path}: "
    return message[len(prefix) :] if exc.path and message.startswith(prefix) else message


def _secret_values(data: object) -> Iterator[str]:
    """Every string under a secret-looking key anywhere in ``data`` (tables, lists, nodes)."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in _PASSWORD_REFERENCES:
                continue  # the name of a variable or a file, not the secret itself
            if isinstance(key, str) and is_secret_key(key) and isinstance(value, str):
                yield value
            else:
                yield from _secret_values(value)
    elif isinstance(data, (list, tuple)):
        for item in data:
            yield from _secret_values(item)


@contextlib.contextmanager
def _secrets_kept_out(secrets: _Secrets, *sources: object) -> Iterator[None]:
    """Last line of defence: scrub every secret seen from a ConfigError raised inside.

    Messages are written never to quote a value that may be secret, but a value in the wrong
    place (a password typed as the driver name) is quoted as what it was taken for.
    """
    try:
        yield
    except ConfigError as exc:
        known = [*secrets.values(), *(v for src in sources for v in _secret_values(src))]
        if not known:
            raise
        redactor = Redactor(known)
        raise ConfigError(redactor.scrub(_message_of(exc)), redactor.scrub(exc.path)) from None


class _Secrets:
    """Collects secret values in order, once each."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, value: object) -> None:
        if value is not None and str(value):
            self._seen[str(value)] = None

    def collect(self, params: Mapping[str, object]) -> None:
        for key, value in params.items():
            if is_secret_key(key):
                self.add(value)

    def values(self) -> tuple[str, ...]:
        return tuple(self._seen)


def _given_password_key(data: Mapping[str, object]) -> str | None:
    return next((k for k in _PASSWORD_KEYS if k in data), None)


def _resolve_password(
    data: Mapping[str, object],
    kwargs: Mapping[str, object],
    prefix: str,
    base: Path,
    secrets: _Secrets,
) -> str | None:
    """The password from ``password_env`` / ``password_file``; None when neither is given.

    Also checks that at most one way of giving a password is used (``kwargs`` may hold an
    inline ``password``).
    """
    given = [k for k in _PASSWORD_KEYS if k in data and data[k] is not None]
    if "password" in kwargs and "password" not in given:
        given.insert(0, "password")
    if len(given) > 1:
        raise ConfigError(f"give only one of {', '.join(given)}", _join(prefix, given[1]))
    if "password" in kwargs:
        value = kwargs["password"]
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"must be a string, not {_kind(value)}", _join(prefix, "password"))
        secrets.add(value)
        return None
    if "password_env" in given:
        password = _password_from_env(data["password_env"], _join(prefix, "password_env"))
    elif "password_file" in given:
        password = _password_from_file(data["password_file"], _join(prefix, "password_file"), base)
    else:
        return None
    secrets.add(password)
    return password


def _password_from_env(name: object, path: str) -> str:
    var = _check_str(name, path)
    if not var:
        raise ConfigError("must name an environment variable", path)
    value = os.environ.get(var)
    if value is None:
        raise ConfigError(f"environment variable {var!r} is not set", path)
    if not value:
        raise ConfigError(f"environment variable {var!r} is empty", path)
    return value


def _password_from_file(name: object, path: str, base: Path) -> str:
    file = base / Path(_check_str(name, path)).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read password file {str(file)!r}: {exc.strerror}", path
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"password file {str(file)!r} is not UTF-8 text", path) from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError(f"password file {str(file)!r} is empty", path)
    return text


# -- small checks -------------------------------------------------------------------------------


def _check_keys(table: Mapping[str, object], known: frozenset[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"unknown key {str(key)!r}{hint}", _join(prefix, str(key)))


def _check_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {_kind(value)}", path)
    return value


def _table(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a table of driver keywords, not {_kind(value)}", path)
    return value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _cluster_prefix(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError("a cluster name must be a non-empty string", "clusters")
    return _join("clusters", name)


def _join(prefix: str, key: str) -> str:
    part = key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'
    return f"{prefix}.{part}" if prefix else part
