"""config.example.toml parses, and documents every key the parser accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from clusterdb.config import CLUSTER_KEYS, NODE_KEYS, ROOT_KEYS, load_file
from clusterdb.config.schema import OPTIONS, PAIRS
from clusterdb.core.policies import Backoff, HedgePolicy, SelectionPolicy

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("APP_DB_PASSWORD", "APP_DB_PASSWORD_PG3", "SHOP_DB_PASSWORD", "ORDERS_DB_PASSWORD"):
        monkeypatch.setenv(var, f"value-of-{var}")


def test_example_parses(env: None) -> None:
    clusters = {c.name: c for c in load_file(EXAMPLE)}
    assert set(clusters) == {"main", "shop", "orders", "local"}
    main = clusters["main"]
    assert [n.name for n in main.nodes] == ["pg1", "10.0.0.2:5432", "pg3"]
    assert main.connect_kwargs["password"] == "value-of-APP_DB_PASSWORD"
    assert clusters["local"].driver == "sqlite3"
    orders = clusters["orders"].options
    assert (orders.topology, orders.single_writer) == ("galera", True)
    assert (main.options.topology, main.options.single_writer) == ("auto", False)


def test_example_tuning_values_are_the_defaults(env: None) -> None:
    main = next(c for c in load_file(EXAMPLE) if c.name == "main")
    assert main.options.selection == SelectionPolicy()
    assert main.options.hedge == HedgePolicy()
    assert main.options.backoff == Backoff()


def _mentioned(text: str, key: str) -> bool:
    as_key = re.search(rf"^\s*#?\s*{re.escape(key)}\s*=", text, re.MULTILINE)
    as_table = re.search(rf"^\s*\[\[?(?:[\w\"-]+\.)*{re.escape(key)}[.\]]", text, re.MULTILINE)
    return bool(as_key or as_table)


@pytest.mark.parametrize(
    ("level", "keys"),
    [("root", ROOT_KEYS), ("cluster", CLUSTER_KEYS), ("node", NODE_KEYS)],
)
def test_every_accepted_key_is_documented(level: str, keys: frozenset[str]) -> None:
    text = EXAMPLE.read_text()
    missing = sorted(k for k in keys if not _mentioned(text, k))
    assert not missing, f"{level} keys missing from config.example.toml: {missing}"


def test_every_documented_key_line_has_a_comment_nearby() -> None:
    lines = EXAMPLE.read_text().splitlines()
    data = tomllib.loads(EXAMPLE.read_text())
    assert data["clusters"]
    for index, line in enumerate(lines):
        if re.match(r"^[a-z_]+\s*=", line):
            context = lines[max(0, index - 12) : index + 1]
            assert any("#" in c for c in context), f"undocumented line {index + 1}: {line}"


def test_key_coverage_check_can_fail() -> None:
    assert not _mentioned("user = 1\n", "password")
    assert _mentioned("# password = 'x'\n", "password")
    assert _mentioned("[[clusters.main.nodes]]\n", "nodes")
    assert _mentioned("[clusters.main]\n", "clusters")
    assert not _mentioned("[clusters.main]\n", "options")


def test_the_bounds_listed_are_the_schemas() -> None:
    text = EXAMPLE.read_text()
    block = text[text.index("# Bounds of the numbers") :].split("\n\n", 1)[0]
    listed: dict[str, str] = {}
    pairs = ""
    for line in block.splitlines()[1:]:
        bounds, _, keys = line.lstrip("# ").partition("   ")
        if bounds == "and":
            pairs = keys.strip()
            continue
        for key in keys.strip().split(", "):
            listed[key] = bounds
    others = listed.pop("every other number")
    for key, option in OPTIONS.items():
        if option.value_type is float:
            assert str(option.bounds) == listed.pop(key, others), key
    assert not listed, f"not options: {sorted(listed)}"
    assert pairs == ", ".join(f"{low} <= {high}" for low, high in PAIRS)
