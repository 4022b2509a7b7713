"""Pure formatting helpers of the status table (no server)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from clusterdb.stats import ClusterStats, NodeStats
from clusterdb.tools.report import (
    STATUS_HEADERS,
    ago,
    collapse_whitespace,
    fmt_ms,
    fmt_seconds,
    mask_secrets,
    mask_secrets_in,
    render_status,
    render_table,
    status_row,
    truncate,
    truncate_middle,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def node(name: str = "pg0", **changes: object) -> NodeStats:
    fields: dict[str, object] = {
        "name": name,
        "address": "127.0.0.1:5432",
        "state": "up",
        "role": "primary",
        "connects": 7,
        "connect_errors": 2,
        "discarded": 1,
        "pending": 0,
        "last_error": None,
        "last_error_at": None,
        "last_success_at": NOW - timedelta(seconds=3),
        "latency_ms": 1.234,
        "latency_min_ms": 1.0,
        "rtt_ms": None,
        "lag_s": None,
        "state_changes": 1,
        "last_state_change_at": NOW - timedelta(minutes=5, seconds=7),
        "down_since": None,
        "drained": False,
        "probes": 0,
        "probe_errors": 0,
    }
    fields.update(changes)
    return NodeStats(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s ago"),
        (timedelta(seconds=3.9), "3s ago"),
        (timedelta(seconds=59), "59s ago"),
        (timedelta(seconds=60), "1m00s ago"),
        (timedelta(minutes=2, seconds=5), "2m05s ago"),
        (timedelta(minutes=10), "10m ago"),
        (timedelta(minutes=59, seconds=59), "59m ago"),
        (timedelta(hours=1, minutes=5), "1h05m ago"),
        (timedelta(hours=30), "30h ago"),
        (timedelta(days=3, hours=1), "3d ago"),
        (timedelta(seconds=-2), "0s ago"),  # a clock a little ahead is "just now"
    ],
)
def test_ago(delta: timedelta, expected: str) -> None:
    assert ago(NOW - delta, NOW) == expected


def test_ago_never() -> None:
    assert ago(None, NOW) == "-"


def test_number_formats() -> None:
    assert fmt_ms(None) == "-"
    assert fmt_ms(1.234) == "1.23"
    assert fmt_ms(12.34) == "12.3"
    assert fmt_ms(1234.5) == "1234"
    assert fmt_seconds(None) == "-"
    assert fmt_seconds(0.5) == "0.50"
    assert fmt_seconds(12.34) == "12.3"


def test_truncate_middle_keeps_head_and_tail() -> None:
    text = "OperationalError: connection to server at 10.0.0.1 port 5432 failed: auth failed"
    out = truncate_middle(text, 60)
    assert len(out) == 60
    assert out.startswith("OperationalError")
    assert out.endswith("failed: auth failed")
    assert "…" in out
    assert truncate_middle("short", 40) == "short"
    assert truncate_middle("abcdefghijkl", 5) == "abcd…"


def test_truncate_and_collapse_whitespace() -> None:
    assert truncate("abcdef", 10) == "abcdef"
    assert truncate("abcdef", 4) == "abc…"
    assert len(truncate("x" * 100, 60)) == 60
    assert truncate("abc", 0) == ""
    assert (
        collapse_whitespace("connection failed:\n  server   closed\n")
        == "connection failed: server closed"
    )


def test_mask_secrets_known_secrets_and_forms() -> None:
    text = "auth failed for 'app' password=hunter2 at postgresql://app:s3cr3t@db:5432/x; CANARY"
    out = mask_secrets(text, secrets=["CANARY", ""])
    assert "hunter2" not in out
    assert "s3cr3t" not in out
    assert "CANARY" not in out
    assert "password=***" in out
    assert "postgresql://app:***@db:5432/x" in out
    assert mask_secrets("nothing secret here") == "nothing secret here"


def test_mask_secrets_in_values_keeps_json_valid() -> None:
    data = {
        "last_error": 'auth: password: "hunter2", then CANARY',
        "nodes": [{"e": "pwd=x"}, 3, None],
    }
    out = mask_secrets_in(data, ["CANARY"])
    text = json.dumps(out)
    assert json.loads(text) == out
    assert "hunter2" not in text
    assert "CANARY" not in text
    assert out["nodes"][1:] == [3, None]


def test_render_table_alignment() -> None:
    out = render_table(("A", "N", "LAST"), [["x", "1", "end"], ["long", "123", "e"]], right={"N"})
    lines = out.splitlines()
    assert lines == ["A       N  LAST", "x       1  end", "long  123  e"]


def test_render_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="2 cells"):
        render_table(("A", "B", "C"), [["1", "2"]])


def test_status_row_cells() -> None:
    n = node(
        state="down",
        drained=True,
        last_error="connection refused\n\tis the server running? password=CANARY",
        last_error_at=NOW - timedelta(seconds=42),
    )
    row = dict(zip(STATUS_HEADERS, status_row("main", n, NOW, error_width=40), strict=True))
    assert row["CLUSTER"] == "main"
    assert row["NODE"] == "pg0"
    assert row["STATE"] == "down,drained"
    galera = node(galera="donor", drained=True)
    assert status_row("main", galera, NOW)[STATUS_HEADERS.index("STATE")] == (
        "up,galera:donor,drained"
    )
    assert row["LAT_MS"] == "1.23"
    assert row["RTT_MS"] == "-"
    assert row["CONNECTS"] == "7"
    assert row["ERRORS"] == "2"
    assert row["PROBES"] == "0"
    assert row["PROBE_ERRS"] == "0"
    assert row["LAST_OK"] == "3s ago"
    assert row["LAST_ERR"] == "42s ago"
    assert row["CHANGED"] == "5m07s ago"
    assert "\n" not in row["LAST_ERROR"]
    assert "CANARY" not in row["LAST_ERROR"]
    assert len(row["LAST_ERROR"]) <= 40
    assert row["LAST_ERROR"].startswith("connection re")
    assert row["LAST_ERROR"].endswith("password=***")


def test_lag_cell_says_when_replication_stopped() -> None:
    def lag_cell(n: NodeStats) -> str:
        return dict(zip(STATUS_HEADERS, status_row("main", n, NOW), strict=True))["LAG_S"]

    assert lag_cell(node(role="replica", lag_s=2.5)) == "2.50"
    assert lag_cell(node(role="replica", lag_s=None, replication_stopped=True)) == "stopped"


def test_render_status_one_row_per_node() -> None:
    stats = {
        "main": ClusterStats("main", "psycopg", (node("pg0"), node("pg1")), 3, 0, NOW),
        "other": ClusterStats("other", "pymysql", (node("mdb0"),), 0, 1, NOW),
    }
    lines = render_status(stats, NOW).splitlines()
    assert lines[0].split() == list(STATUS_HEADERS)
    assert [line.split()[:2] for line in lines[1:]] == [
        ["main", "pg0"],
        ["main", "pg1"],
        ["other", "mdb0"],
    ]
    assert all(line == line.rstrip() for line in lines)


def test_render_status_column_subset() -> None:
    stats = {"main": ClusterStats("main", "psycopg", (node("pg0"),), 1, 0, NOW)}
    lines = render_status(stats, NOW, columns=("NODE", "STATE", "CONNECTS")).splitlines()
    assert lines[0].split() == ["NODE", "STATE", "CONNECTS"]
    assert lines[1].split() == ["pg0", "up", "7"]
    with pytest.raises(ValueError, match="NOPE"):
        render_status(stats, NOW, columns=("NODE", "NOPE"))
