"""The OK packet's session state parser (clusterdb.core.session_track), against the protocol's
format: info string<lenenc>, then the state block string<lenenc> of (type int<1>, data
string<lenenc>) entries; type 0 carries a variable's name and value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterdb.core.session_track import last_gtid, lenenc, system_variables


def enc_int(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little")
    return b"\xfe" + n.to_bytes(8, "little")


def enc(data: bytes) -> bytes:
    return enc_int(len(data)) + data


def variable(name: bytes, value: bytes) -> bytes:
    return b"\x00" + enc(enc(name) + enc(value))


def message(info: bytes, *entries: bytes) -> bytes:
    return enc(info) + enc(b"".join(entries))


SCHEMA = b"\x01" + enc(enc(b"test"))  # SESSION_TRACK_SCHEMA
STATE = b"\x02" + enc(b"1")  # SESSION_TRACK_STATE_CHANGE

CASES = [
    ("nothing", b"", None),
    ("none", None, None),
    ("info only", enc(b""), None),
    ("empty block", message(b""), None),
    ("one gtid", message(b"", variable(b"last_gtid", b"0-1-42")), "0-1-42"),
    ("with info", message(b"Rows matched: 1", variable(b"last_gtid", b"0-1-7")), "0-1-7"),
    (
        "among others",
        message(
            b"", SCHEMA, variable(b"autocommit", b"ON"), variable(b"last_gtid", b"1-2-3"), STATE
        ),
        "1-2-3",
    ),
    (
        "the last one wins",
        message(b"", variable(b"last_gtid", b"0-1-1"), variable(b"last_gtid", b"0-1-2")),
        "0-1-2",
    ),
    ("another variable", message(b"", variable(b"time_zone", b"UTC")), None),
    ("empty value", message(b"", variable(b"last_gtid", b"")), None),
    ("truncated block", message(b"", variable(b"last_gtid", b"0-1-42"))[:-2], None),
    ("truncated entry", enc(b"") + enc(b"\x00" + enc_int(30) + b"ab"), None),
    ("NULL length", b"\xfb", None),
    ("long info", message(b"x" * 300, variable(b"last_gtid", b"0-1-9")), "0-1-9"),
    ("not ascii", message(b"", variable(b"last_gtid", b"\xff")), None),
]


@pytest.mark.parametrize(("label", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_last_gtid(label: str, data: bytes | None, expected: str | None) -> None:
    assert last_gtid(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x05", (5, 1)),
        (b"\xfa", (250, 1)),
        (b"\xfc\x01\x02", (0x0201, 3)),
        (b"\xfd\x01\x02\x03", (0x030201, 4)),
        (b"\xfe" + (1 << 40).to_bytes(8, "little"), (1 << 40, 9)),
        (b"\xfc\x01", None),
        (b"\xfb", None),
        (b"\xff", None),
        (b"", None),
    ],
)
def test_lenenc(data: bytes, expected: tuple[int, int] | None) -> None:
    assert lenenc(data, 0) == expected


names = st.binary(max_size=40).filter(lambda b: b != b"last_gtid")
pairs = st.lists(st.tuples(names, st.binary(max_size=300)), max_size=5)
gtids = st.tuples(*(st.integers(0, 2**32 - 1),) * 3).map(lambda t: "-".join(map(str, t)))


def test_a_message_captured_from_mariadb() -> None:
    """MariaDB 10.11's OK to ``SET session_track_system_variables = 'last_gtid,
    session_track_system_variables'`` (PyMySQL's ``message``): empty info, one entry."""
    value = b"last_gtid,session_track_system_variables"
    data = b"\x00J\x00H\x1esession_track_system_variables(" + value
    assert system_variables(data) == [(b"session_track_system_variables", value)]
    assert last_gtid(data) is None


@given(st.binary(max_size=400), pairs, pairs, gtids)
def test_a_built_message_gives_its_gtid(
    info: bytes, before: list[tuple[bytes, bytes]], after: list[tuple[bytes, bytes]], gtid: str
) -> None:
    entries = [variable(n, v) for n, v in before]
    entries += [SCHEMA, variable(b"last_gtid", gtid.encode()), STATE]
    entries += [variable(n, v) for n, v in after]
    data = message(info, *entries)
    assert last_gtid(data) == gtid
    found = system_variables(data)
    assert found == [*before, (b"last_gtid", gtid.encode()), *after]


@given(st.binary(max_size=200))
def test_any_bytes_give_a_str_or_none(data: bytes) -> None:
    assert last_gtid(data) is None or isinstance(last_gtid(data), str)
