"""Hypothesis properties of config files: valid ones parse, one bad key is named exactly, no
secret ever reaches an error message, and register() keywords and TOML judge every option
alike."""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.config import (
    CLUSTER_KEYS,
    NODE_KEYS,
    ROOT_KEYS,
    ClusterConfig,
    ClusterOptions,
    check_option,
    cluster_from_kwargs,
    parse_config,
)
from clusterdb.config.schema import OPTIONS, PAIRS
from clusterdb.core.policies import Backoff, HedgePolicy
from clusterdb.errors import ConfigError

# -- a small TOML writer (tomllib only reads) ---------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(doc: dict[str, Any]) -> str:
    return "\n".join(f"{_key(k)} = {_value(v)}" for k, v in doc.items()) + "\n"


# -- valid configs ------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True)
secrets = st.text(min_size=1, max_size=12).map(lambda s: "Zq9!" + s)

numbers = {
    "connect_timeout": st.floats(0.001, 60),
    "max_lag": st.floats(0, 3600),
    "heartbeat": st.floats(0.01, 60),
    "latency_window_ms": st.floats(0, 100),
    "latency_window_ratio": st.floats(0, 5),
    "latency_weight_exponent": st.floats(0, 8),
    "hedge_multiplier": st.floats(0.5, 10),
    "backoff_factor": st.floats(1, 4),
    "backoff_jitter": st.floats(0, 0.9),
}


@st.composite
def node_tables(draw: st.DrawFn, index: int) -> dict[str, Any]:
    node: dict[str, Any] = {"name": f"n{index}"}
    if draw(st.booleans()):
        node["host"] = draw(hosts)
        if draw(st.booleans()):
            node["port"] = draw(st.integers(1, 65535))
    else:
        node["dsn"] = f"host={draw(hosts)} port={draw(st.integers(1, 65535))}"
    if draw(st.booleans()):
        node["options"] = {"application_name": draw(names)}
    return node


@st.composite
def cluster_tables(draw: st.DrawFn) -> dict[str, Any]:
    table: dict[str, Any] = {"driver": draw(st.sampled_from(["psycopg", "pymysql", "sqlite3"]))}
    for key in draw(st.lists(st.sampled_from(sorted(numbers)), unique=True, max_size=4)):
        table[key] = draw(numbers[key])
    if draw(st.booleans()):
        table["monitor"] = draw(st.booleans())
    if draw(st.booleans()):
        table["user"] = draw(names)
    if draw(st.booleans()):
        table["password"] = draw(secrets)
    if draw(st.booleans()):
        table["options"] = {"sslmode": "prefer"}
    count = draw(st.integers(1, 4))
    table["nodes"] = [draw(node_tables(i)) for i in range(count)]
    return table


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    cluster_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    return {"clusters": {name: draw(cluster_tables()) for name in cluster_names}}


@settings(max_examples=60, deadline=None)
@given(documents())
def test_valid_configs_parse(doc: dict[str, Any]) -> None:
    text = to_toml(doc)
    configs = parse_config(tomllib.loads(text))
    assert [c.name for c in configs] == list(doc["clusters"])
    for config in configs:
        table = doc["clusters"][config.name]
        assert [n.name for n in config.nodes] == [n["name"] for n in table["nodes"]]
        for key in ("connect_timeout", "max_lag", "heartbeat"):
            if key in table:
                assert getattr(config.options, key) == table[key]
        if "password" in table:
            assert config.secrets == (table["password"],)
            assert table["password"] not in repr(config)


# -- one mutated key ----------------------------------------------------------------------------


def _key_paths(doc: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    """(container path, key) of every key the parser checks (not inside options tables)."""
    out: list[tuple[tuple[str | int, ...], str]] = [((), "clusters")]
    for name, table in doc["clusters"].items():
        for key in table:
            out.append((("clusters", name), key))
        for i, node in enumerate(table["nodes"]):
            for key in node:
                out.append((("clusters", name, "nodes", i), key))
    return out


def _dotted(container: tuple[str | int, ...], key: str) -> str:
    path = ""
    for part in container:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return f"{path}.{key}" if path else key


@settings(max_examples=60, deadline=None)
@given(documents(), st.data())
def test_one_unknown_key_is_named_exactly(doc: dict[str, Any], data: st.DataObject) -> None:
    container, key = data.draw(st.sampled_from(_key_paths(doc)))
    known = {0: ROOT_KEYS, 2: CLUSTER_KEYS, 4: NODE_KEYS}[len(container)]
    typo = data.draw(st.sampled_from([key + "x", key[:-1], "x" + key, key.upper()]))
    if typo in known or not typo:
        return
    target: Any = doc
    for part in container:
        target = target[part]
    target[typo] = target.pop(key)
    try:
        parse_config(tomllib.loads(to_toml(doc)))
    except ConfigError as exc:
        assert exc.path == _dotted(container, typo)
        assert str(exc).startswith(exc.path + ": unknown key")
    else:
        raise AssertionError(f"{_dotted(container, typo)} was accepted")


# -- secrets never in error text ----------------------------------------------------------------

BREAKERS = [
    ("port", "5432"),  # a string port
    ("port", -1),
    ("connect_timeout", -1),
    ("heartbeat", True),
    ("prot", 1),
    ("password_env", "X"),  # a second password source
    ("dsn", "host=a password='{quoted}' oops"),  # a malformed DSN holding the secret
    ("dsn", "postgresql://u:{secret}@h:bad/db"),
    ("password", 5),
    ("user", ["{secret}"]),
    ("driver", "{secret}"),
    ("name", ""),
    ("dup-name", "{secret}"),  # a node named like the password, twice
]


@settings(max_examples=80, deadline=None)
@given(documents(), secrets, st.sampled_from(BREAKERS), st.data())
def test_secrets_never_in_error_text(
    doc: dict[str, Any], secret: str, breaker: tuple[str, Any], data: st.DataObject
) -> None:
    name = next(iter(doc["clusters"]))
    table = doc["clusters"][name]
    table["password"] = secret
    key, value = breaker
    # Quoted as libpq quotes: unquoted, a secret ending in a backslash would escape the space
    # after it and take "oops" in (a valid DSN, not the malformed one this breaker means).
    quoted = secret.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, str):
        value = value.replace("{secret}", secret).replace("{quoted}", quoted)
    elif isinstance(value, list):
        value = [v.replace("{secret}", secret) for v in value]
    if key == "dup-name":
        table["nodes"] = [
            {"name": value, "host": "a"},
            *table["nodes"],
            {"name": value, "host": "b"},
        ]
    elif key in ("port", "dsn", "prot", "name"):
        node = data.draw(st.sampled_from(table["nodes"]))
        node.pop("host" if key == "dsn" else "dsn", None)
        node[key] = value
    else:
        table[key] = value
    try:
        parse_config(tomllib.loads(to_toml(doc)))
    except ConfigError as exc:
        # Every secret starts with "Zq9!": no form of it (quoted, escaped) may show.
        assert "Zq9!" not in str(exc)
        assert "Zq9!" not in exc.path
        assert "Zq9!" not in repr(exc)
    else:
        raise AssertionError("the broken config was accepted")


# -- register() and TOML judge every option alike -----------------------------------------------

NUMBER_KEYS = sorted(key for key, option in OPTIONS.items() if option.value_type is float)
INT64 = 2**63 - 1

option_values = st.one_of(
    st.floats(),  # nan, inf, -0.0, subnormals...
    st.floats(-5, 1000),
    st.integers(-INT64 - 1, INT64),
    st.integers(-3, 1200),
    st.sampled_from([0, 0.0, 1, 1.0, 0.999, 1e-300]),
    st.booleans(),
    st.text(max_size=4),
)


def _judged(
    options: dict[str, Any],
) -> tuple[ClusterOptions | ConfigError, ClusterOptions | ConfigError]:
    """(what register() made of ``options``, what a TOML table made of them)."""
    doc = {"clusters": {"c": {"driver": "sqlite3", "nodes": [":memory:"], **options}}}

    def by_register() -> ClusterConfig:
        return cluster_from_kwargs("c", "sqlite3", [":memory:"], options)

    def by_toml() -> ClusterConfig:
        return parse_config(tomllib.loads(to_toml(doc)))[0]

    results: list[ClusterOptions | ConfigError] = []
    for build in (by_register, by_toml):
        try:
            results.append(build().options)
        except ConfigError as exc:
            assert type(exc) is ConfigError  # never a policy's own ValueError
            results.append(exc)
    return results[0], results[1]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(NUMBER_KEYS), option_values, min_size=1, max_size=3))
def test_register_and_toml_reject_the_same_numbers_the_same_way(options: dict[str, Any]) -> None:
    by_register, by_toml = _judged(options)
    if isinstance(by_register, ConfigError) or isinstance(by_toml, ConfigError):
        assert isinstance(by_register, ConfigError), (options, by_toml)
        assert isinstance(by_toml, ConfigError), (options, by_register)
        assert by_register.path == by_toml.path
        assert str(by_register) == str(by_toml)
        key = by_register.path.removeprefix("clusters.c.")
        assert key in options
    else:
        assert by_register == by_toml


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(NUMBER_KEYS), option_values)
def test_one_rejected_number_is_rejected_by_check_option_with_its_key_path(
    key: str, value: Any
) -> None:
    by_register, by_toml = _judged({key: value})
    try:
        check_option(key, value, f"clusters.c.{key}")
    except ConfigError as exc:
        assert str(exc) == str(by_register) == str(by_toml)
    else:
        # Accepted alone by the schema: only a pair (hedge_min_ms > hedge_max_ms...) can fail.
        for result in (by_register, by_toml):
            if isinstance(result, ConfigError):
                assert any(key in pair for pair in PAIRS)
                assert "must be >=" in str(result)


@settings(max_examples=150, deadline=None)
@given(
    st.builds(
        HedgePolicy,
        multiplier=st.floats(0.1, 10),
        min_delay=st.floats(0, 0.1),
        max_delay=st.floats(0.1, 2),
        unknown_delay=st.floats(0, 1),
    ),
    st.builds(
        Backoff,
        initial=st.floats(0.01, 1),
        factor=st.floats(1, 4),
        cap=st.floats(1, 10),
        jitter=st.floats(0, 0.9),
    ),
    st.dictionaries(st.sampled_from(NUMBER_KEYS), option_values, max_size=3),
)
def test_policy_objects_with_keys_fail_only_as_config_errors(
    hedge: HedgePolicy, backoff: Backoff, options: dict[str, Any]
) -> None:
    """Objects given to register() and the keys adjusting them: the schema judges the merge,
    so no policy's own ValueError reaches the caller."""
    try:
        config = cluster_from_kwargs(
            "c", "sqlite3", [":memory:"], {"hedge": hedge, "backoff": backoff, **options}
        )
    except ConfigError as exc:
        assert type(exc) is ConfigError
        assert exc.path.removeprefix("clusters.c.") in options
    else:
        assert config.options.hedge.multiplier == options.get("hedge_multiplier", hedge.multiplier)
