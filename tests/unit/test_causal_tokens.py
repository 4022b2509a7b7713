"""Read-your-writes tokens (clusterdb.core.causal, causal_rules): parsing, text form, order,
merge, what satisfies a token and the course of connect(after=token)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdb.core.causal import (
    Gtid,
    Token,
    covers,
    format_lsn,
    later,
    merge,
    parse_gtids,
    parse_lsn,
    parse_token,
)
from clusterdb.core.causal_rules import (
    CausalCourse,
    applied_from_row,
    token_from_row,
    wait_reached,
    wait_sql,
    without,
)
from clusterdb.core.selection import Plan
from clusterdb.errors import CausalTokenError

SYSID = "7312345678901234567"

LSNS = [
    ("0/0", 0),
    ("0/16B3D48", 0x16B3D48),
    ("1/0", 1 << 32),
    ("16/B374D848", (0x16 << 32) | 0xB374D848),
    ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1),
    (" 0/A ", 10),
]


@pytest.mark.parametrize(("text", "value"), LSNS)
def test_lsns_parse_as_64_bit_positions(text: str, value: int) -> None:
    assert parse_lsn(text) == value
    assert parse_lsn(format_lsn(value)) == value


@pytest.mark.parametrize("text", ["", "0", "0/", "/1", "G/1", "1/2/3", "123456789/0", "-1/0"])
def test_bad_lsns_are_token_errors(text: str) -> None:
    with pytest.raises(CausalTokenError):
        parse_lsn(text)


GTIDS = [
    ("", ()),
    ("0-1-42", (Gtid(0, 1, 42),)),
    ("1-2-7,0-1-42", (Gtid(0, 1, 42), Gtid(1, 2, 7))),
    ("0-1-42,\n1-2-7", (Gtid(0, 1, 42), Gtid(1, 2, 7))),
    ("0-1-42,0-3-40", (Gtid(0, 1, 42),)),  # a domain twice: the later sequence number
]


@pytest.mark.parametrize(("text", "gtids"), GTIDS)
def test_gtid_lists_parse_one_gtid_per_domain(text: str, gtids: tuple[Gtid, ...]) -> None:
    assert parse_gtids(text) == gtids


@pytest.mark.parametrize("text", ["0-1", "0-1-x", "a-b-c", "0-1-2-3", "0--1-2"])
def test_bad_gtids_are_token_errors(text: str) -> None:
    with pytest.raises(CausalTokenError):
        parse_gtids(text)


TOKENS = [
    (Token("main", "pg", 0x16B3D48, SYSID), f"cdb1:main:pg:{SYSID}:0/16B3D48"),
    (Token("main", "mariadb", (Gtid(0, 1, 42), Gtid(1, 2, 7))), "cdb1:main:mariadb:0-1-42.1-2-7"),
    (Token("main", "mariadb", ()), "cdb1:main:mariadb:"),
    (Token("a b;c,d\"'\\:é", "mariadb", ()), "cdb1:a%20b%3Bc%2Cd%22%27%5C%3A%C3%A9:mariadb:"),
]


@pytest.mark.parametrize(("token", "text"), TOKENS)
def test_tokens_round_trip_through_their_text(token: Token, text: str) -> None:
    assert str(token) == text
    assert parse_token(text) == token


BAD_TOKENS = [
    "",
    "0/16B3D48",
    "cdb2:main:pg:1:0/1",
    "cdb1:main:oracle:1",
    "cdb1:main:pg:0/1",
    "cdb1:main:pg:x:0/1",
    "cdb1:main:pg:1:0/1:2",
    "cdb1:main:mariadb:0-1-2,1-2-3",
    "cdb1:main:mariadb:0-1-2:x",
]


@pytest.mark.parametrize("text", BAD_TOKENS)
def test_malformed_tokens_are_clear_errors(text: str) -> None:
    with pytest.raises(CausalTokenError):
        parse_token(text)


def test_a_token_is_checked_against_its_cluster() -> None:
    text = str(Token("main", "pg", 5, SYSID))
    assert parse_token(text, "main").position == 5
    with pytest.raises(CausalTokenError, match="token of cluster 'main' used on cluster 'other'"):
        parse_token(text, "other")
    token = parse_token(text)
    token.check_cluster("main", SYSID)
    token.check_cluster("main", "")  # not known: nothing to compare
    with pytest.raises(CausalTokenError, match="system identifier is 42"):
        token.check_cluster("main", "42")
    with pytest.raises(CausalTokenError, match="a token is a str"):
        parse_token(b"cdb1:main:mariadb:")  # type: ignore[arg-type]


def _g(*gtids: tuple[int, int]) -> tuple[Gtid, ...]:
    return tuple(Gtid(d, 1, s) for d, s in gtids)


COVERS: list[tuple[Any, Token, bool]] = [
    (None, Token("m", "pg", 5, SYSID), False),
    (4, Token("m", "pg", 5, SYSID), False),
    (5, Token("m", "pg", 5, SYSID), True),
    (6, Token("m", "pg", 5, SYSID), True),
    (_g((0, 5)), Token("m", "pg", 5, SYSID), False),  # another kind never covers
    (5, Token("m", "mariadb", _g((0, 5))), False),
    ((), Token("m", "mariadb", ()), True),  # nothing written yet: anyone
    (_g((0, 5)), Token("m", "mariadb", _g((0, 5))), True),
    (_g((0, 4)), Token("m", "mariadb", _g((0, 5))), False),
    (_g((0, 9)), Token("m", "mariadb", _g((0, 5), (1, 1))), False),  # a domain missing
    (_g((0, 9), (1, 1)), Token("m", "mariadb", _g((0, 5), (1, 1))), True),
    (_g((0, 9), (1, 1), (2, 3)), Token("m", "mariadb", _g((1, 1))), True),
]


@pytest.mark.parametrize(("position", "token", "expected"), COVERS)
def test_what_covers_a_token(position: Any, token: Token, expected: bool) -> None:
    assert covers(position, token) is expected


_names = st.text(alphabet=string.printable + "éß☃", max_size=20)
_lsns = st.integers(0, (1 << 64) - 1)
_gtid_lists = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)),
    max_size=5,
).map(lambda xs: parse_gtids(",".join(f"{d}-{s}-{n}" for d, s, n in xs)))
_tokens = st.one_of(
    st.builds(lambda n, p, i: Token(n, "pg", p, str(i)), _names, _lsns, st.integers(0, 2**64)),
    st.builds(lambda n, g: Token(n, "mariadb", g), _names, _gtid_lists),
)


@given(_tokens)
def test_any_token_is_cookie_and_header_safe_and_round_trips(token: Token) -> None:
    text = str(token)
    assert not set(text) & set(";,\"'\\ \t\r\n"), text
    assert text.isascii() and text.isprintable()
    assert parse_token(text) == token


@given(_lsns, _lsns)
def test_lsn_order_is_the_integer_order(a: int, b: int) -> None:
    token = Token("m", "pg", b, SYSID)
    assert covers(a, token) is (a >= b)
    assert (parse_lsn(format_lsn(a)) >= parse_lsn(format_lsn(b))) is (a >= b)


@given(_gtid_lists, _gtid_lists)
def test_a_merge_covers_both_and_is_covered_by_what_covers_both(
    a: tuple[Gtid, ...], b: tuple[Gtid, ...]
) -> None:
    ta, tb = Token("m", "mariadb", a), Token("m", "mariadb", b)
    both = merge(ta, tb)
    assert isinstance(both.position, tuple)
    assert covers(both.position, ta) and covers(both.position, tb)
    union = parse_gtids(",".join(str(g) for g in a + b))
    assert covers(union, both)


def test_a_node_keeps_its_later_position() -> None:
    assert later(None, 5) == 5 and later(7, 5) == 7 and later(5, 7) == 7
    assert later(_g((0, 5), (1, 9)), _g((0, 7))) == _g((0, 7), (1, 9))
    assert later(5, _g((0, 1))) == _g((0, 1))  # another kind: the new one


def test_merging_tokens_of_other_clusters_or_kinds_fails() -> None:
    assert merge(Token("m", "pg", 5, SYSID), Token("m", "pg", 9, SYSID)).position == 9
    with pytest.raises(CausalTokenError):
        merge(Token("m", "pg", 5, SYSID), Token("n", "pg", 9, SYSID))
    with pytest.raises(CausalTokenError):
        merge(Token("m", "pg", 5), Token("m", "mariadb", ()))


ROWS: list[tuple[str, Any, Token]] = [
    ("pg", ("0/3000148", SYSID), Token("c", "pg", 0x3000148, SYSID)),
    ("mariadb", ("0-1-42", "0-1-42,1-2-7"), Token("c", "mariadb", _g((0, 42)))),
    ("mariadb", ("", "0-1-42,1-1-7"), Token("c", "mariadb", _g((0, 42), (1, 7)))),
    ("mariadb", (b"", b""), Token("c", "mariadb", ())),
]


@pytest.mark.parametrize(("kind", "row", "token"), ROWS)
def test_tokens_from_the_token_query(kind: Any, row: Any, token: Token) -> None:
    assert token_from_row("c", kind, row) == token


def test_a_missing_position_is_an_error() -> None:
    with pytest.raises(CausalTokenError):
        token_from_row("c", "pg", None)
    with pytest.raises(CausalTokenError):
        token_from_row("c", "pg", (None, SYSID))


def test_applied_rows_and_waits() -> None:
    assert applied_from_row("pg", (True, "0/10", SYSID)) == (True, 16, SYSID)
    assert applied_from_row("pg", (False, None, SYSID)) == (False, None, SYSID)
    assert applied_from_row("mariadb", (1, "0-1-5", "")) == (True, _g((0, 5)), "")
    pg, maria = Token("c", "pg", 16, SYSID), Token("c", "mariadb", _g((0, 5), (1, 2)))
    assert wait_sql(pg, 1.0) is None
    assert wait_sql(maria, 0.25) == "SELECT MASTER_GTID_WAIT('0-1-5,1-1-2', 0.250)"
    assert wait_sql(maria, -1.0) == "SELECT MASTER_GTID_WAIT('0-1-5,1-1-2', 0.000)"
    assert wait_reached(maria, "mariadb", (0,)) and not wait_reached(maria, "mariadb", (-1,))
    assert not wait_reached(maria, "mariadb", None)
    assert wait_reached(pg, "pg", (True, "0/10", SYSID))
    assert not wait_reached(pg, "pg", (True, "0/F", SYSID))
    assert wait_reached(pg, "pg", (False, None, SYSID))  # a primary has it all


def test_the_course_of_a_replica_connect() -> None:
    token = Token("c", "pg", 100, SYSID)
    course = CausalCourse(token, "replica", {"r1": 20, "r2": 120, "r3": None})
    assert not course.direct and course.search_role == "replica" and course.waits
    assert course.known == {"r2"}
    assert not course.needs_asking("r2") and course.needs_asking("r1")
    # First among the replicas known past the token, then (widened) among all but the lacking.
    assert course.avoiding == ({"r1", "r3"}, f"not known to have applied {token}")
    assert course.widen() and not course.widen()
    assert course.avoiding == (set(), course.reason)
    assert course.judge_answer("c", "r1", (True, "0/63", SYSID)) == "hold"
    assert course.seen == {"r1": 99}
    assert course.avoid == {"r1"} and course.avoiding == ({"r1"}, course.reason)
    assert course.judge("r3", True, 100) == "take"
    assert course.judge("r2", True, None) == "take"  # the monitor saw it past the token
    assert not course.falls_back
    reasons = course.no_replica({"p": "role primary, wanted replica"}, 1.0)
    assert reasons["r1"] == f"has not applied {token} after waiting 1.00 s (causal_wait)"
    assert token.__str__() in course.wanted_text()


@pytest.mark.parametrize(
    ("wanted", "direct", "role", "waits", "falls_back"),
    [
        ("primary", True, "replica", False, True),
        ("prefer-replica", False, "replica", True, True),
        ("replica", False, "replica", True, False),
        ("any", False, "any", False, True),
    ],
)
def test_the_course_per_role(
    wanted: Any, direct: bool, role: str, waits: bool, falls_back: bool
) -> None:
    course = CausalCourse(Token("c", "pg", 1, SYSID), wanted, {})
    assert not course.narrow and not course.widen()
    assert (course.direct, course.search_role, course.falls_back) == (direct, role, falls_back)
    assert course.waits is waits
    assert course.judge("p", False, None) == "take"  # a primary always satisfies


def test_without_leaves_nodes_out_of_a_plan() -> None:
    plan = Plan(("a", "b", "c"), (0.1, 0.2, 0.3), race=False)
    out = without(plan, {"b", "x"}, "lacks it")
    assert out.nodes == ("a", "c") and out.hedge_delays == (0.1, 0.3)
    assert dict(out.rejected) == {"b": "lacks it"}
    assert without(plan, (), "") is plan
    raced = without(Plan(("a",), (0.0,), race=True), {"a"}, "lacks it")
    assert raced.nodes == () and not raced.race


def _cluster() -> Any:
    import sqlite3

    from clusterdb.config import cluster_from_kwargs
    from clusterdb.drivers.generic import GenericAdapter
    from clusterdb.runtime.cluster import Cluster

    specs = [{"name": n, "dsn": ":memory:"} for n in ("p", "r1", "r2")]
    config = cluster_from_kwargs("c", sqlite3, specs, {"causal_wait": 0.5})
    return Cluster(config, GenericAdapter(sqlite3))


def test_the_cluster_knows_which_replicas_a_probe_saw_past_a_token() -> None:
    from clusterdb.runtime.probe import ProbeOutcome

    cluster = _cluster()
    assert cluster.options.causal_wait == 0.5
    cluster.record_probe("p", ProbeOutcome(True, 0.001, 0.001, role="primary"))
    cluster.record_probe("r1", ProbeOutcome(True, 0.001, 0.001, role="replica", applied=100))
    cluster.record_probe("r2", ProbeOutcome(True, 0.001, 0.001, role="replica", applied=50))
    assert cluster.replica_positions() == {"r1": 100, "r2": 50}
    cluster.record_probe("r2", ProbeOutcome(False, error=OSError("gone")))  # kept
    assert cluster.stats_snapshot().node("r2").applied == "0/32"
    cluster.record_causal(True, False, {"r1": 90, "r2": 60})  # a question saw r2 further
    assert cluster.replica_positions() == {"r1": 100, "r2": 60}
    cluster.record_causal(True, True, {})
    stats = cluster.stats_snapshot()
    assert (stats.causal_waits, stats.causal_fallbacks) == (2, 1)
    assert stats.as_dict()["causal_waits"] == 2
    from clusterdb.tools.report import causal_lines

    assert causal_lines({"c": stats}) == ["c: read-your-writes tokens: 2 waits, 1 fallbacks"]
    cluster.reset_stats()
    assert cluster.stats_snapshot().causal_waits == 0
    assert causal_lines({"c": cluster.stats_snapshot()}) == []
    plan, _ = cluster.begin("any", avoid=({"p"}, "lacks it"))  # r2 is down: out anyway
    assert plan.nodes == ("r1",) and plan.rejected["p"] == "lacks it"
