"""The option table and check_option(): one validator, one message style, for every source."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from clusterdb.config import (
    ClusterOptions,
    check_option,
    cluster_from_kwargs,
    known_secrets,
    load_file,
    parse_config,
)
from clusterdb.config.schema import CLUSTER_KEYS, OPTION_KEYS, OPTIONS, PAIRS, POLICY_TYPES
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy
from clusterdb.errors import ConfigError

CANARY = "Canary-PW-9f3k"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("connect_timeout", 0, "must be > 0 seconds, got 0"),
        ("connect_timeout", -1.5, "must be > 0 seconds, got -1.5"),
        ("connect_timeout", "5", "must be a number of seconds, not a string"),
        ("connect_timeout", True, "must be a number of seconds, not a boolean"),
        ("connect_timeout", float("inf"), "must be a finite number"),
        ("connect_timeout", 10**400, "must be a finite number"),
        ("max_lag", -1, "must be >= 0 seconds, got -1"),
        ("hedge_min_ms", -3, "must be >= 0 ms, got -3"),
        ("hedge_multiplier", 0, "must be > 0, got 0"),
        ("backoff_factor", 0.5, "must be >= 1, got 0.5"),
        ("backoff_jitter", 1, "must be >= 0 and < 1, got 1"),
        ("latency_weight_exponent", None, "must be a number, not a NoneType"),
        ("monitor", "yes", "must be true or false, not a string"),
    ],
)
def test_check_option_messages(key: str, value: object, message: str) -> None:
    path = f"clusters.main.{key}"
    with pytest.raises(ConfigError) as info:
        check_option(key, value, path)
    assert info.value.path == path
    assert str(info.value) == f"{path}: {message}"


def test_check_option_returns_the_value_in_the_keys_unit() -> None:
    # What connect() needs for a connect_timeout override.
    assert check_option("connect_timeout", 2, "connect_timeout") == 2.0
    assert type(check_option("connect_timeout", 2, "connect_timeout")) is float
    assert check_option("hedge_min_ms", 5, "x") == 5.0  # ms, not the field's seconds
    assert check_option("backoff_jitter", 0.0, "x") == 0.0
    assert check_option("monitor", False, "x") is False


def test_the_table_covers_every_number_and_flag_key() -> None:
    assert set(OPTIONS) <= CLUSTER_KEYS
    assert set(OPTIONS) <= OPTION_KEYS
    targets = {"options": ClusterOptions, **POLICY_TYPES}
    fields = {key: {f.name for f in dataclasses.fields(cls)} for key, cls in targets.items()}
    for option in OPTIONS.values():
        assert option.field in fields[option.target], option.key
    for low, high in PAIRS:
        assert OPTIONS[low].unit == OPTIONS[high].unit


def test_policy_defaults_lie_inside_the_schema() -> None:
    """The core's defaults are values the schema accepts (in the key's unit)."""
    objects = {"options": ClusterOptions(), "selection": SelectionPolicy()}
    objects |= {"hedge": HedgePolicy(), "backoff": Backoff()}
    for key, option in OPTIONS.items():
        value = getattr(objects[option.target], option.field)
        if value is None:
            assert option.nullable, key
            continue
        shown = value if option.value_type in (bool, str) else value / option.scale
        assert check_option(key, shown, key) == pytest.approx(shown), key


def test_cluster_options_check_through_the_schema() -> None:
    with pytest.raises(ConfigError) as info:
        ClusterOptions(connect_timeout=0)
    assert str(info.value) == "connect_timeout: must be > 0 seconds, got 0"
    with pytest.raises(ConfigError, match="heartbeat: must be a number of seconds"):
        ClusterOptions(heartbeat="5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="monitor: must be true or false"):
        ClusterOptions(monitor="yes")  # type: ignore[arg-type]
    assert ClusterOptions(max_lag=None).max_lag is None


def test_a_policy_object_and_a_key_are_checked_together() -> None:
    """hedge=HedgePolicy(max_delay=0.2) with hedge_min_ms=300: the schema's pair check names
    the key, not the policy's own ValueError."""
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs(
            "c", "sqlite3", [":memory:"], {"hedge": HedgePolicy(max_delay=0.2), "hedge_min_ms": 300}
        )
    assert info.value.path == "clusters.c.hedge_min_ms"
    assert "hedge_max_ms (200) must be >= hedge_min_ms (300)" in str(info.value)
    assert type(info.value) is ConfigError


def test_toml_node_inline_password_reaches_the_driver_and_the_secrets() -> None:
    (main,) = parse_config(
        tomllib.loads(
            f'[clusters.main]\ndriver = "psycopg"\n[[clusters.main.nodes]]\nhost = "a"\n'
            f'password = "{CANARY}"\n'
        )
    )
    assert main.nodes[0].params == {"password": CANARY}
    assert main.secrets == (CANARY,)
    assert CANARY not in repr(main)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        (
            '[[clusters.main.nodes]]\nhost = "a"\npassword = "x"\npassword_env = "Y"\n',
            "clusters.main.nodes[0].password_env",
            "give only one of password, password_env",
        ),
        (
            'nodes = ["h"]\nuser = "u"\npassword_env = "X"\noptions = { user = "v" }\n',
            "clusters.main.options.user",
            "given twice: also set as clusters.main.user",  # was: ...password_env
        ),
    ],
)
def test_a_key_given_twice_is_named(text: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads('[clusters.main]\ndriver = "psycopg"\n' + text))
    assert info.value.path == path
    assert fragment in str(info.value)


def test_an_earlier_clusters_password_is_kept_out_of_a_later_clusters_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A_PW", CANARY)
    (tmp_path / "pw").write_text("from-a-file\n")
    file = tmp_path / "c.toml"
    file.write_text(
        '[clusters.a]\ndriver = "sqlite3"\npassword_env = "A_PW"\nnodes = ["a.db"]\n'
        '[clusters.b]\ndriver = "sqlite3"\npassword_file = "pw"\nnodes = ["b.db"]\n'
        f'[clusters.c]\ndriver = "{CANARY}"\nnodes = ["from-a-file"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert info.value.path == "clusters.c.driver"
    assert CANARY not in str(info.value)


def test_known_secrets_of_every_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_ENV", "from-env")
    (tmp_path / "pw").write_text("from-file\n")
    file = tmp_path / "c.toml"
    file.write_text(
        '[clusters.a]\ndriver = "psycopg"\npassword_env = "PW_ENV"\n'
        "[[clusters.a.nodes]]\nhost = 'h1'\npassword_file = 'pw'\n"
        "[[clusters.a.nodes]]\nhost = 'h2'\npassword = 'inline'\n"
        "[[clusters.a.nodes]]\ndsn = 'host=h3 password=in-dsn'\n"
        "[[clusters.a.nodes]]\ndsn = 'postgresql://u:in-url@h4/db'\n"
        "[clusters.a.options]\nsslpassword = 'ssl'\n"
    )
    assert sorted(known_secrets(load_file(file))) == sorted(
        ["from-env", "from-file", "inline", "in-dsn", "in-url", "ssl"]
    )
