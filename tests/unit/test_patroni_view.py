"""Patroni's GET /cluster read into nodes and role hints (clusterdb.config.patroni), from a
recorded answer of the harness's Patroni 4.1 plus hand-made variants; and the ``patroni``
option."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from clusterdb.config import cluster_from_kwargs
from clusterdb.config.patroni import parse_cluster
from clusterdb.errors import ConfigError

RECORDED = json.loads((Path(__file__).parent / "data" / "patroni_cluster.json").read_text())


def test_recorded_answer() -> None:
    view = parse_cluster(RECORDED)
    assert [(n.name, n.host, n.port) for n in view.nodes] == [
        ("m1", "127.0.0.1", 31473),
        ("m2", "127.0.0.1", 31474),
        ("m3", "127.0.0.1", 26943),
        ("m5", "10.0.0.5", 5432),  # m4 is starting: no host yet, skipped
    ]
    assert view.leader == "m3"
    assert dict(view.roles) == {"m1": "replica", "m2": "replica", "m3": "primary", "m5": "replica"}
    assert dict(view.lag) == {"m1": 0, "m2": None, "m5": 4096}
    assert view.states["m3"] == "running"


@pytest.mark.parametrize(
    ("member", "kept", "role"),
    [
        ({"name": "a", "host": "h", "port": 1, "role": "master"}, True, "primary"),
        ({"name": "a", "host": "h", "port": 1, "role": "primary"}, True, "primary"),
        ({"name": "a", "host": "h", "port": 1, "role": "standby_leader"}, True, "replica"),
        ({"name": "a", "host": "h", "port": 0, "role": "leader"}, False, None),
        ({"name": "a", "host": "h", "port": True, "role": "leader"}, False, None),
        ({"name": "a", "host": "", "port": 5, "role": "leader"}, False, None),
        ({"host": "h", "port": 5, "role": "leader"}, False, None),
        ("not a member", False, None),
    ],
)
def test_members(member: Any, kept: bool, role: str | None) -> None:
    view = parse_cluster({"members": [member]})
    assert bool(view.nodes) == kept
    assert view.roles.get("a") == role


@pytest.mark.parametrize("doc", [None, [], {"members": "x"}, {"scope": "s"}, "text"])
def test_not_patroni(doc: object) -> None:
    with pytest.raises(ValueError, match="not a Patroni"):
        parse_cluster(doc)


def test_duplicate_member_names_keep_the_first() -> None:
    a = {"name": "a", "host": "h1", "port": 1, "role": "leader"}
    view = parse_cluster({"members": [a, {**a, "host": "h2"}]})
    assert [n.host for n in view.nodes] == ["h1"]


def test_patroni_option() -> None:
    config = cluster_from_kwargs(
        "c", sqlite3, [], {"patroni": ["http://127.0.0.1:8008/", "https://b:8008"]}
    )
    assert config.options.patroni == ("http://127.0.0.1:8008", "https://b:8008")
    assert config.nodes == ()  # discovered at run time
    one = cluster_from_kwargs("c", sqlite3, [":memory:"], {"patroni": "http://x:8008"})
    assert one.options.patroni == ("http://x:8008",)
    with pytest.raises(ConfigError) as info:
        cluster_from_kwargs("c", sqlite3, [], {"patroni": ["ftp://x"]})
    assert info.value.path == "clusters.c.patroni[0]"
    with pytest.raises(ConfigError, match="no nodes"):
        cluster_from_kwargs("c", sqlite3, [], {})
