"""Config from TOML and from register() keywords: valid shapes, and errors that name the key."""

from __future__ import annotations

import sqlite3
import textwrap
import tomllib
import types
from pathlib import Path

import pytest

from clusterdb.config import (
    CONFIG_ENV,
    OPTION_KEYS,
    ClusterConfig,
    ClusterOptions,
    NodeEntry,
    cluster_from_kwargs,
    load_file,
    parse_config,
)
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy
from clusterdb.errors import ConfigError

CANARY = "Canary-PW-9f3k"

BASE = """
[clusters.main]
driver = "psycopg"
user = "app"
[[clusters.main.nodes]]
name = "pg1"
host = "10.0.0.1"
port = 5432
[[clusters.main.nodes]]
dsn = "host=10.0.0.2 port=5432"
"""


def parse(text: str, base: Path | None = None) -> tuple[ClusterConfig, ...]:
    return parse_config(tomllib.loads(textwrap.dedent(text)), base=base)


def test_base_config() -> None:
    (main,) = parse(BASE)
    assert main.name == "main"
    assert main.driver == "psycopg"
    assert [n.name for n in main.nodes] == ["pg1", "10.0.0.2:5432"]
    assert main.nodes[0] == NodeEntry("pg1", "10.0.0.1", 5432, None, {})
    assert main.nodes[1].dsn == "host=10.0.0.2 port=5432"
    assert main.nodes[1].host is None  # given as a DSN: passed to the driver as given
    assert main.nodes[1].address == "10.0.0.2:5432"
    assert dict(main.connect_kwargs) == {"user": "app"}
    assert main.options == ClusterOptions()
    assert main.secrets == ()


def test_options_and_units() -> None:
    (main,) = parse(
        BASE.replace(
            'user = "app"',
            """user = "app"
            connect_timeout = 0.25
            max_lag = 3
            heartbeat = 1
            monitor = false
            pipeline_handshake = false
            topology = "galera"
            single_writer = true
            latency_window_ms = 4
            latency_window_ratio = 0.2
            latency_weight_exponent = 3
            hedge_multiplier = 2
            hedge_min_ms = 5
            hedge_max_ms = 250
            hedge_unknown_ms = 30
            backoff_initial = 0.2
            backoff_factor = 3
            backoff_cap = 4
            backoff_jitter = 0.1""".replace("            ", ""),
        )
    )
    assert main.options == ClusterOptions(
        connect_timeout=0.25,
        max_lag=3.0,
        heartbeat=1.0,
        monitor=False,
        pipeline_handshake=False,
        topology="galera",
        single_writer=True,
        selection=SelectionPolicy(window_ms=4.0, window_ratio=0.2, weight_exponent=3.0),
        hedge=HedgePolicy(multiplier=2.0, min_delay=0.005, max_delay=0.25, unknown_delay=0.03),
        backoff=Backoff(initial=0.2, factor=3.0, cap=4.0, jitter=0.1),
    )


def test_driver_options_and_node_options() -> None:
    (main,) = parse(
        BASE
        + """
        [clusters.main.options]
        sslmode = "require"
        sslpassword = "Canary-PW-9f3k"
        [[clusters.main.nodes]]
        host = "10.0.0.3"
        [clusters.main.nodes.options]
        application_name = "x"
        """.replace("        ", "")
    )
    assert main.connect_kwargs["sslmode"] == "require"
    assert main.nodes[2].params == {"application_name": "x"}
    assert main.nodes[2].name == "10.0.0.3"
    assert CANARY in main.secrets
    assert CANARY not in repr(main)


def test_string_nodes_and_sqlite_paths() -> None:
    (local,) = parse(
        """
        [clusters.local]
        driver = "sqlite3"
        nodes = ["app.db", ":memory:", "postgresql://u:Canary-PW-9f3k@h:5433/db"]
        """
    )
    assert [n.name for n in local.nodes] == ["node1", "node2", "h:5433"]
    assert [n.address for n in local.nodes] == ["app.db", ":memory:", "h:5433"]
    assert local.secrets == (CANARY,)
    assert CANARY not in repr(local)


def test_password_inline_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inline = parse(BASE.replace('user = "app"', f'password = "{CANARY}"'))[0]
    assert inline.connect_kwargs["password"] == CANARY
    assert inline.secrets == (CANARY,)
    assert CANARY not in repr(inline) and CANARY not in str(inline)

    monkeypatch.setenv("APP_PW", CANARY)
    from_env = parse(BASE.replace('user = "app"', 'password_env = "APP_PW"'))[0]
    assert from_env.connect_kwargs["password"] == CANARY

    (tmp_path / "pw").write_text(CANARY + "\n\n")
    from_file = parse(BASE.replace('user = "app"', 'password_file = "pw"'), base=tmp_path)[0]
    assert from_file.connect_kwargs["password"] == CANARY + "\n"  # one newline stripped

    (tmp_path / "pw2").write_bytes(CANARY.encode() + b"\r\n")
    crlf = parse(BASE.replace('user = "app"', 'password_file = "pw2"'), base=tmp_path)[0]
    assert crlf.connect_kwargs["password"] == CANARY


def test_node_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG1_PW", CANARY)
    (main,) = parse(BASE.replace('name = "pg1"', 'name = "pg1"\npassword_env = "PG1_PW"'))
    assert main.nodes[0].params["password"] == CANARY
    assert main.secrets == (CANARY,)
    assert CANARY not in repr(main.nodes[0])


BAD: list[tuple[str, str, str, str]] = [
    # (description, (old, new) replacement in BASE as "old=>new", expected path, fragment)
    (
        "typo in a cluster key",
        'user = "app"=>conect_timeout = 2',
        "clusters.main.conect_timeout",
        "did you mean 'connect_timeout'",
    ),
    (
        "typo in a node key",
        "port = 5432=>prot = 5432",
        "clusters.main.nodes[0].prot",
        "did you mean 'port'",
    ),
    (
        "port as a string",
        'port = 5432=>port = "5432"',
        "clusters.main.nodes[0].port",
        "write it without quotes",
    ),
    ("port as a bool", "port = 5432=>port = true", "clusters.main.nodes[0].port", "boolean"),
    ("port out of range", "port = 5432=>port = 70000", "clusters.main.nodes[0].port", "65535"),
    ("port as a float", "port = 5432=>port = 5432.0", "clusters.main.nodes[0].port", "integer"),
    (
        "negative timeout",
        'user = "app"=>connect_timeout = -1',
        "clusters.main.connect_timeout",
        "must be > 0",
    ),
    (
        "zero timeout",
        'user = "app"=>connect_timeout = 0',
        "clusters.main.connect_timeout",
        "must be > 0",
    ),
    (
        "bool as number",
        'user = "app"=>heartbeat = true',
        "clusters.main.heartbeat",
        "not a boolean",
    ),
    ("string as number", 'user = "app"=>max_lag = "10"', "clusters.main.max_lag", "not a string"),
    ("nan", 'user = "app"=>max_lag = nan', "clusters.main.max_lag", "finite"),
    (
        "monitor as string",
        'user = "app"=>monitor = "yes"',
        "clusters.main.monitor",
        "true or false",
    ),
    (
        "pipeline_handshake as number",
        'user = "app"=>pipeline_handshake = 1',
        "clusters.main.pipeline_handshake",
        "true or false",
    ),
    (
        "single_writer as string",
        'user = "app"=>single_writer = "yes"',
        "clusters.main.single_writer",
        "true or false",
    ),
    (
        "unknown topology",
        'user = "app"=>topology = "multi-master"',
        "clusters.main.topology",
        "must be one of 'auto', 'replication', 'galera', not 'multi-master'",
    ),
    ("topology not a string", 'user = "app"=>topology = 1', "clusters.main.topology", "not 1"),
    ("jitter >= 1", 'user = "app"=>backoff_jitter = 1.5', "clusters.main.backoff_jitter", "< 1"),
    ("factor < 1", 'user = "app"=>backoff_factor = 0.5', "clusters.main.backoff_factor", ">= 1"),
    (
        "hedge min above max",
        'user = "app"=>hedge_min_ms = 900',
        "clusters.main.hedge_min_ms",
        "hedge_max_ms (500) must be >= hedge_min_ms (900)",
    ),
    (
        "backoff cap below initial",
        'user = "app"=>backoff_cap = 0.05',
        "clusters.main.backoff_cap",
        "backoff_initial",
    ),
    (
        "unknown driver",
        'driver = "psycopg"=>driver = "psycog"',
        "clusters.main.driver",
        "did you mean 'psycopg'",
    ),
    (
        "driver not a string",
        'driver = "psycopg"=>driver = 3',
        "clusters.main.driver",
        "driver name",
    ),
    ("no driver", 'driver = "psycopg"=>', "clusters.main.driver", "missing"),
    (
        "duplicate names",
        'dsn = "host=10.0.0.2 port=5432"=>name = "pg1"\nhost = "b"',
        "clusters.main.nodes[1].name",
        "duplicate node name 'pg1', also used by clusters.main.nodes[0]",
    ),
    (
        "several hosts in one node",
        'host = "10.0.0.1"=>host = "a,b"',
        "clusters.main.nodes[0].host",
        "several hosts",
    ),
    (
        "multi-host DSN",
        'dsn = "host=10.0.0.2 port=5432"=>dsn = "host=a,b"',
        "clusters.main.nodes[1].dsn",
        "several hosts",
    ),
    (
        "malformed DSN",
        'dsn = "host=10.0.0.2 port=5432"=>dsn = "host=a oops"',
        "clusters.main.nodes[1].dsn",
        "malformed conninfo",
    ),
    ("empty host", 'host = "10.0.0.1"=>host = ""', "clusters.main.nodes[0].host", "empty"),
    ("empty name", 'name = "pg1"=>name = ""', "clusters.main.nodes[0].name", "empty"),
    ("name not a string", 'name = "pg1"=>name = 1', "clusters.main.nodes[0].name", "string"),
    ("user not a string", 'user = "app"=>user = 5', "clusters.main.user", "must be a string"),
    (
        "password not a string",
        'user = "app"=>password = 12345',
        "clusters.main.password",
        "must be a string",
    ),
    (
        "two password sources",
        'user = "app"=>password = "x"\npassword_env = "X"',
        "clusters.main.password_env",
        "give only one of password, password_env",
    ),
    (
        "options not a table",
        'user = "app"=>options = "sslmode=require"',
        "clusters.main.options",
        "must be a table",
    ),
    (
        "user given twice",
        'user = "app"=>user = "app"\noptions = { user = "other" }',
        "clusters.main.options.user",
        "given twice",
    ),
    (
        "password given twice",
        'user = "app"=>password_env = "X"\noptions = { password = "y" }',
        "clusters.main.options.password",
        "given twice: also set as clusters.main.password_env",
    ),
]


@pytest.mark.parametrize(
    ("what", "change", "path", "fragment"),
    BAD,
    ids=[b[0] for b in BAD],
)
def test_bad_config(what: str, change: str, path: str, fragment: str) -> None:
    old, new = change.split("=>")
    assert old in BASE, what
    with pytest.raises(ConfigError) as info:
        parse(BASE.replace(old, new, 1))
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("[cluster.main]\ndriver = 'psycopg'", "cluster", "did you mean 'clusters'"),
        ("clusters = {}", "clusters", "no cluster defined"),
        ("", "clusters", "no cluster defined"),
        ("[clusters]\nmain = 5", "clusters.main", "must be a table"),
        ("[clusters.main]\ndriver = 'psycopg'", "clusters.main.nodes", "missing"),
        ("[clusters.main]\ndriver = 'psycopg'\nnodes = []", "clusters.main.nodes", "no nodes"),
        ("[clusters.main]\ndriver = 'psycopg'\nnodes = 'h'", "clusters.main.nodes", "array"),
        ("[clusters.main]\ndriver = 'psycopg'\nnodes = [5]", "clusters.main.nodes[0]", "a node"),
        ("[clusters.main]\ndriver = 'psycopg'\nnodes = ['']", "clusters.main.nodes[0]", "empty"),
        (
            "[clusters.main]\ndriver = 'psycopg'\nnodes = ['host=a', 'host=a']",
            "clusters.main.nodes[1]",
            "duplicate node name 'a'",
        ),
        ('[clusters."my db"]\ndriver = 1\nnodes = ["h"]', 'clusters."my db".driver', "driver"),
    ],
)
def test_bad_shapes(text: str, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_unknown_key_without_close_match_lists_known_keys() -> None:
    with pytest.raises(ConfigError) as info:
        parse(BASE.replace('user = "app"', "zzzzzz = 1"))
    assert "known: " in str(info.value) and "connect_timeout" in str(info.value)


def test_missing_env_var_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(ConfigError) as info:
        parse(BASE.replace('user = "app"', 'password_env = "NOPE_PW"'))
    assert info.value.path == "clusters.main.password_env"
    assert "'NOPE_PW' is not set" in str(info.value)


def test_empty_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMPTY_PW", "")
    with pytest.raises(ConfigError, match="is empty"):
        parse(BASE.replace('user = "app"', 'password_env = "EMPTY_PW"'))


def test_unreadable_password_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse(BASE.replace('user = "app"', 'password_file = "missing"'), base=tmp_path)
    assert info.value.path == "clusters.main.password_file"
    assert str(tmp_path / "missing") in str(info.value)
    assert "No such file" in str(info.value)


def test_empty_password_file(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        parse(BASE.replace('user = "app"', 'password_file = "pw"'), base=tmp_path)


# -- load_file ---------------------------------------------------------------------------------


def test_load_file_needs_a_path_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match=CONFIG_ENV):
        load_file()


def test_load_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "c.toml"
    file.write_text(BASE)
    monkeypatch.setenv(CONFIG_ENV, str(file))
    assert [c.name for c in load_file()] == ["main"]
    assert [c.name for c in load_file(file)] == ["main"]


def test_load_file_password_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(CANARY)
    file = tmp_path / "c.toml"
    file.write_text(BASE.replace('user = "app"', 'password_file = "secret"'))
    (main,) = load_file(str(file))
    assert main.connect_kwargs["password"] == CANARY


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_file(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[clusters.main\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(BASE.replace("port = 5432", 'port = "5432"'))
    with pytest.raises(ConfigError) as info:
        load_file(wrong)
    assert info.value.path == "clusters.main.nodes[0].port"
    assert str(info.value).startswith("clusters.main.nodes[0].port: must be")
    assert str(wrong) in str(info.value)


def test_load_file_errors_never_show_the_password(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text(
        BASE.replace('user = "app"', f'password = "{CANARY}"\nconect_timeout = 1').replace(
            'dsn = "host=10.0.0.2 port=5432"', f'dsn = "host=b password={CANARY} oops"'
        )
    )
    with pytest.raises(ConfigError) as info:
        load_file(file)
    assert CANARY not in str(info.value)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse("")


# -- register() keywords -----------------------------------------------------------------------


def test_from_kwargs() -> None:
    config = cluster_from_kwargs(
        "main",
        "psycopg",
        [
            {"name": "pg1", "host": "10.0.0.1", "port": 5432, "sslmode": "require"},
            "host=10.0.0.2 port=5432",
            {"host": "10.0.0.3"},
            {"dsn": f"postgresql://app:{CANARY}@10.0.0.4/app"},
        ],
        {
            "dbname": "app",
            "user": "app",
            "password": CANARY,
            "connect_timeout": 0.5,
            "max_lag": None,
            "options": "-c search_path=x",
        },
    )
    assert [n.name for n in config.nodes] == ["pg1", "10.0.0.2:5432", "10.0.0.3", "10.0.0.4"]
    assert config.nodes[0].params == {"sslmode": "require"}
    assert config.options.connect_timeout == 0.5
    assert config.options.max_lag is None
    assert dict(config.connect_kwargs) == {
        "dbname": "app",
        "user": "app",
        "password": CANARY,
        "options": "-c search_path=x",
    }
    assert config.secrets == (CANARY,)
    assert CANARY not in repr(config)
    assert CANARY not in repr(config.nodes[3]) and CANARY not in config.nodes[3].address


def test_from_kwargs_option_keys_never_reach_the_driver() -> None:
    kwargs = {"connect_timeout": 1.0, "heartbeat": 2.0, "monitor": False, "user": "u"}
    config = cluster_from_kwargs("c", "psycopg", ["host=a"], kwargs)
    assert dict(config.connect_kwargs) == {"user": "u"}
    assert {"connect_timeout", "heartbeat", "monitor", "max_lag"} <= OPTION_KEYS


def test_from_kwargs_policy_objects_then_number_keys() -> None:
    config = cluster_from_kwargs(
        "c",
        "psycopg",
        ["host=a"],
        {"hedge": HedgePolicy(multiplier=5.0), "hedge_min_ms": 1, "backoff": Backoff(cap=9.0)},
    )
    assert config.options.hedge == HedgePolicy(multiplier=5.0, min_delay=0.001)
    assert config.options.backoff.cap == 9.0
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", "psycopg", ["host=a"], {"hedge": 3})
    assert info.value.path == "clusters.c.hedge"


def test_from_kwargs_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", CANARY)
    config = cluster_from_kwargs(
        "c", "pymysql", [{"host": "a", "password_env": "PW"}], {"password_env": "PW"}
    )
    assert config.connect_kwargs["password"] == CANARY
    assert config.nodes[0].params["password"] == CANARY
    assert "password_env" not in config.connect_kwargs


def test_from_kwargs_driver_forms() -> None:
    assert cluster_from_kwargs("c", "PyMySQL", ["h"], {}).driver == "pymysql"
    assert cluster_from_kwargs("c", sqlite3, [":memory:"], {}).driver is sqlite3
    assert cluster_from_kwargs("c", "sqlite3", [":memory:"], {}).driver == "sqlite3"
    with pytest.raises(ConfigError, match="no connect"):
        cluster_from_kwargs("c", types.ModuleType("empty"), ["h"], {})
    with pytest.raises(ConfigError, match="did you mean 'pymysql'"):
        cluster_from_kwargs("c", "pymsql", ["h"], {})
    with pytest.raises(ConfigError, match="not a number"):
        cluster_from_kwargs("c", 3.5, ["h"], {})


@pytest.mark.parametrize(
    ("nodes", "path", "fragment"),
    [
        ("host=a", "clusters.c.nodes", "must be a list"),
        ([], "clusters.c.nodes", "no nodes"),
        ([{"host": "a"}, {"host": "a"}], "clusters.c.nodes[1]", "duplicate node name 'a'"),
        (
            [{"name": "x", "host": "a"}, {"name": "x", "host": "b"}],
            "clusters.c.nodes[1].name",
            "duplicate",
        ),
        ([{"host": "a", "port": "5432"}], "clusters.c.nodes[0].port", "without quotes"),
        ([3], "clusters.c.nodes[0]", "mapping or a DSN string"),
        ([{1: "x"}], "clusters.c.nodes[0]", "keys must be strings"),
        (
            [{"host": "a", "password": "x", "password_env": "Y"}],
            "clusters.c.nodes[0].password_env",
            "give only one",
        ),
    ],
)
def test_from_kwargs_bad_nodes(nodes: object, path: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", "psycopg", nodes, {})  # type: ignore[arg-type]
    assert info.value.path == path
    assert fragment in str(info.value)


def test_from_kwargs_bad_option_values() -> None:
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", "psycopg", ["h"], {"connect_timeout": "5"})
    assert info.value.path == "clusters.c.connect_timeout"
    with pytest.raises(ConfigError):
        cluster_from_kwargs("", "psycopg", ["h"], {})


def test_node_entry_address_forms() -> None:
    assert NodeEntry("a", "::1", 5432, None, {}).address == "[::1]:5432"
    assert NodeEntry("a", "/var/run/postgresql", 5432, None, {}).address == (
        "/var/run/postgresql:5432"
    )
    assert NodeEntry("a", "h", None, None, {}).address == "h"
    assert NodeEntry("a", None, None, f"host=h password={CANARY} dbname=x", {}).address == "h"
    assert NodeEntry("a", None, None, f"dbname=x password={CANARY}", {}).address == (
        "dbname=x password=***"
    )
    assert NodeEntry("a", None, None, None, {"database": "app.db"}).address == "app.db"
    assert NodeEntry("a", None, None, None, {}).address == ""


def test_cluster_options_validate() -> None:
    with pytest.raises(ConfigError):
        ClusterOptions(connect_timeout=0)
    with pytest.raises(ConfigError):
        ClusterOptions(max_lag=-1)


def test_a_password_typed_in_the_wrong_place_is_still_hidden() -> None:
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", CANARY, ["h"], {"password": CANARY})
    assert CANARY not in str(info.value)
    assert info.value.path == "clusters.c.driver"
