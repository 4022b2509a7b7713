"""The keys a config may hold, and THE option table: each clusterdb option with its target
field, type, unit and bounds, checked by :func:`check_option` alone.

``register()`` keywords and TOML tables both go through it, and so does anything else that
takes an option (a ``connect_timeout`` given to ``connect()``), so a value is judged and
worded the same wherever it comes from: ``clusters.main.hedge_min_ms: must be >= 0 ms, got
-3``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass

from clusterdb.core.galera import TOPOLOGIES
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy
from clusterdb.errors import ConfigError

__all__ = [
    "CLUSTER_DRIVER_KEYS",
    "CLUSTER_KEYS",
    "DISCOVERY_KEYS",
    "NODE_KEYS",
    "NODE_OWN_KEYS",
    "OPTIONS",
    "OPTION_KEYS",
    "PAIRS",
    "PASSWORD_KEYS",
    "PASSWORD_REFERENCES",
    "POLICY_TYPES",
    "PROVIDER_KEY",
    "ROOT_KEYS",
    "Option",
    "Range",
    "check_keys",
    "check_option",
    "check_pairs",
    "check_str",
    "check_table",
    "cluster_prefix",
    "join",
    "kind",
    "message_of",
]


@dataclass(frozen=True)
class Range:
    """Allowed numbers: ``low`` (inclusive unless ``low_open``) up to ``high`` (exclusive)."""

    low: float
    low_open: bool = False
    high: float | None = None

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value < self.high)

    def __str__(self) -> str:
        text = f"{'>' if self.low_open else '>='} {self.low:g}"
        return text if self.high is None else f"{text} and < {self.high:g}"


@dataclass(frozen=True)
class Option:
    """One clusterdb option: the key users write and the field it sets."""

    key: str
    target: str
    """``options`` (ClusterOptions) or a policy: ``selection``, ``hedge``, ``backoff``."""
    field: str
    value_type: type[float] | type[bool] | type[str] = float
    unit: str = ""
    """What the key is counted in ("seconds", "ms"); empty for a plain number or a flag."""
    scale: float = 1.0
    """key value * scale = field value (``hedge_min_ms`` sets ``min_delay`` in seconds)."""
    bounds: Range = Range(0.0)
    nullable: bool = False
    """``None`` allowed from register() (``max_lag=None``: no limit)."""
    choices: tuple[str, ...] = ()
    """The values a ``str`` option may take."""


_S, _MS = "seconds", "ms"
_ABOVE_0 = Range(0.0, low_open=True)

OPTIONS: Mapping[str, Option] = {
    o.key: o
    for o in (
        Option("connect_timeout", "options", "connect_timeout", unit=_S, bounds=_ABOVE_0),
        Option("max_lag", "options", "max_lag", unit=_S, nullable=True),
        Option("causal_wait", "options", "causal_wait", unit=_S, bounds=Range(0.0)),
        Option(
            "query_timeout", "options", "query_timeout", unit=_S, bounds=_ABOVE_0, nullable=True
        ),
        Option("heartbeat", "options", "heartbeat", unit=_S, bounds=_ABOVE_0),
        Option("monitor", "options", "monitor", value_type=bool),
        Option("pipeline_handshake", "options", "pipeline_handshake", value_type=bool),
        Option("topology", "options", "topology", value_type=str, choices=TOPOLOGIES),
        Option("single_writer", "options", "single_writer", value_type=bool),
        Option("causal_reads", "options", "causal_reads", value_type=bool),
        Option("latency_window_ms", "selection", "window_ms", unit=_MS),
        Option("latency_window_ratio", "selection", "window_ratio"),
        Option("latency_weight_exponent", "selection", "weight_exponent"),
        Option("hedge_multiplier", "hedge", "multiplier", bounds=_ABOVE_0),
        Option("hedge_min_ms", "hedge", "min_delay", unit=_MS, scale=0.001),
        Option("hedge_max_ms", "hedge", "max_delay", unit=_MS, scale=0.001),
        Option("hedge_unknown_ms", "hedge", "unknown_delay", unit=_MS, scale=0.001),
        Option("backoff_initial", "backoff", "initial", unit=_S, bounds=_ABOVE_0),
        Option("backoff_factor", "backoff", "factor", bounds=Range(1.0)),
        Option("backoff_cap", "backoff", "cap", unit=_S, bounds=_ABOVE_0),
        Option("backoff_jitter", "backoff", "jitter", bounds=Range(0.0, high=1.0)),
    )
}
"""Every option by key. Durations are seconds unless the key ends in ``_ms``."""

PAIRS: tuple[tuple[str, str], ...] = (
    ("hedge_min_ms", "hedge_max_ms"),
    ("backoff_initial", "backoff_cap"),
)
"""(low, high): the first must not exceed the second, once every source is merged."""

POLICY_TYPES: Mapping[str, type] = {
    "selection": SelectionPolicy,
    "hedge": HedgePolicy,
    "backoff": Backoff,
}
"""register() keywords taking a whole policy object (the option keys then adjust it)."""

PASSWORD_REFERENCES = ("password_env", "password_file")
"""Keys naming where a password is (a variable, a file), not the password itself."""
PROVIDER_KEY = "password_provider"
"""A cluster's key naming a password provider by import path (``"mypkg.tokens:get_token"``)."""
PASSWORD_KEYS = ("password", *PASSWORD_REFERENCES, PROVIDER_KEY)
"""The ways to give a password, at most one per cluster or node (a provider: cluster only)."""

DISCOVERY_KEYS = ("patroni", "dns")
"""Options naming where the node list comes from at run time (config/patroni.py)."""

OPTION_KEYS: frozenset[str] = frozenset(
    {*OPTIONS, "password_env", "password_file", PROVIDER_KEY, *DISCOVERY_KEYS, *POLICY_TYPES}
)
"""clusterdb's own ``register()`` keywords; every other keyword goes to the driver's connect()."""

ROOT_KEYS: frozenset[str] = frozenset({"clusters"})
"""Keys of the top level of a config file."""
CLUSTER_DRIVER_KEYS = ("user", "dbname", "database", "password")
"""Strings of a ``[clusters.NAME]`` table that go to the driver's connect()."""
CLUSTER_KEYS: frozenset[str] = frozenset(
    {"driver", "nodes", "options", *CLUSTER_DRIVER_KEYS, *OPTIONS, *PASSWORD_KEYS, *DISCOVERY_KEYS}
)
"""Keys of a ``[clusters.NAME]`` table."""
NODE_OWN_KEYS: frozenset[str] = frozenset({"name", "host", "port", "dsn", *PASSWORD_REFERENCES})
"""A node's keys that are clusterdb's; in a register() mapping, the rest go to the driver."""
NODE_KEYS: frozenset[str] = frozenset({*NODE_OWN_KEYS, "options", "password"})
"""Keys of a ``[[clusters.NAME.nodes]]`` table."""


def check_option(key: str, value: object, path: str) -> float | bool | str:
    """``value`` for option ``key``, in the key's unit; ConfigError naming ``path`` if bad."""
    option = OPTIONS[key]
    if option.value_type is str:
        if value not in option.choices:
            choices = ", ".join(map(repr, option.choices))
            raise ConfigError(f"must be one of {choices}, not {value!r}", path)
        return str(value)
    if option.value_type is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"must be true or false, not {kind(value)}", path)
        return value
    unit = f" {option.unit}" if option.unit else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        of_unit = f" of {option.unit}" if option.unit else ""
        raise ConfigError(f"must be a number{of_unit}, not {kind(value)}", path)
    try:
        number = float(value)
    except OverflowError:  # an int beyond any float
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError("must be a finite number", path)
    if number not in option.bounds:
        raise ConfigError(f"must be {option.bounds}{unit}, got {number:g}", path)
    return number


def check_pairs(current: Callable[[str], float], given: Container[str], prefix: str) -> None:
    """Each pair of :data:`PAIRS` in order; ``current(key)`` is the merged value in the key's
    unit. The error names the high key if the user gave it, else the low one."""
    for low_key, high_key in PAIRS:
        low, high = current(low_key), current(high_key)
        if low > high:
            blamed = high_key if high_key in given else low_key
            raise ConfigError(
                f"{high_key} ({high:g}) must be >= {low_key} ({low:g})", join(prefix, blamed)
            )


# -- key paths and the words of messages --------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def join(prefix: str, key: str) -> str:
    """The key path ``prefix.key``, quoting a key TOML would quote."""
    part = key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'
    return f"{prefix}.{part}" if prefix else part


def cluster_prefix(name: object) -> str:
    """``clusters.NAME``; ConfigError when the name is not a non-empty string."""
    if not isinstance(name, str) or not name:
        raise ConfigError("a cluster name must be a non-empty string", "clusters")
    return join("clusters", name)


def kind(value: object) -> str:
    """What a value is, in TOML's words ("a string", "a table"), never the value itself."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def check_str(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {kind(value)}", path)
    return value


def check_table(value: object, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a table of driver keywords, not {kind(value)}", path)
    return value


def check_keys(table: Mapping[str, object], known: frozenset[str], prefix: str) -> None:
    """Every key of ``table`` is known; else the error suggests the closest known key."""
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            )
            raise ConfigError(f"unknown key {str(key)!r}{hint}", join(prefix, str(key)))


def message_of(exc: ConfigError) -> str:
    """The message of ``exc`` without the ``path: `` prefix ConfigError adds."""
    message = str(exc.args[0]) if exc.args else ""
    prefix = f"{exc.path}: "
    return message[len(prefix) :] if exc.path and message.startswith(prefix) else message
