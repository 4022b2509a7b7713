"""Conninfo and URL parsing: libpq's rules, round trips, and errors that never echo a value."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdb.core.dsn import format_conninfo, is_url, looks_like_dsn, parse_dsn
from clusterdb.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("host=a port=5432", {"host": "a", "port": "5432"}),
        ("host = a  port= 5432\tdbname =x", {"host": "a", "port": "5432", "dbname": "x"}),
        ("password='a b' user=u", {"password": "a b", "user": "u"}),
        (r"password='it\'s' x=1", {"password": "it's", "x": "1"}),
        (r"password='back\\slash'", {"password": "back\\slash"}),
        (r"password=un\ quoted", {"password": "un quoted"}),
        ("dbname=", {"dbname": ""}),
        ("dbname='' host=h", {"dbname": "", "host": "h"}),
        ("host=a host=b", {"host": "b"}),
        ("options='-c search_path=x'", {"options": "-c search_path=x"}),
        ("host=a,b port=1,2", {"host": "a,b", "port": "1,2"}),
    ],
)
def test_conninfo(text: str, expected: dict[str, str]) -> None:
    assert parse_dsn(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://", {}),
        ("postgres:///app", {"dbname": "app"}),
        (
            "postgresql://u:p%40ss@db.example:5433/app?sslmode=require",
            {
                "user": "u",
                "password": "p@ss",
                "host": "db.example",
                "port": "5433",
                "dbname": "app",
                "sslmode": "require",
            },
        ),
        ("postgresql://u@h", {"user": "u", "host": "h"}),
        ("postgresql://u:@h", {"user": "u", "password": "", "host": "h"}),
        ("postgresql://h?application_name=a%20b", {"host": "h", "application_name": "a b"}),
        ("postgresql://[::1]:5432/db", {"host": "::1", "port": "5432", "dbname": "db"}),
        ("postgresql://h1:1,h2:2/db", {"host": "h1,h2", "port": "1,2", "dbname": "db"}),
        ("postgresql://%2Ftmp/db", {"host": "/tmp", "dbname": "db"}),
        ("postgresql://:5433", {"port": "5433"}),
        (
            "mysql://root:pw@localhost:3306/test",
            {
                "user": "root",
                "password": "pw",
                "host": "localhost",
                "port": "3306",
                "database": "test",
            },
        ),
        ("mariadb://h/db", {"host": "h", "database": "db"}),
        ("POSTGRESQL://h", {"host": "h"}),
        ("  postgresql://h  ", {"host": "h"}),
        (
            "postgresql://u:p@ss@h/db",
            {"user": "u", "password": "p@ss", "host": "h", "dbname": "db"},
        ),
    ],
)
def test_url(text: str, expected: dict[str, str]) -> None:
    assert parse_dsn(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("host", "missing key=value"),
        ("host=a hunter2", "position 8"),
        ("=x", "missing key=value"),
        ("password='unterminated", "unterminated quoted value for 'password'"),
        ("http://h", "unsupported URL scheme 'http'"),
        ("mysql+pymysql://h", "unsupported URL scheme"),
        ("postgresql://h:abc", "port is not a number"),
        ("postgresql://h/db?flag", "has no '='"),
        ("postgresql://h/db?=x", "empty name"),
        ("postgresql://u:p%zz@h", "invalid percent-encoding in the password"),
        ("postgresql://u:%ff@h", "not valid UTF-8"),
        ("postgresql://[::1/db", "'[' without ']'"),
        ("postgresql://[::1]x/db", "after an IPv6 host"),
        ("postgresql://h?a=1/db?b=2", "'?' before the database path"),
    ],
)
def test_malformed(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "host=h password=my secret",  # a password with a space, unquoted
        "password='never-shown",
        "postgresql://u:never%zzshown@h",
        "postgresql://u:secret@h:secret2",
        "postgresql://u:pw@h/db?password",
    ],
)
def test_errors_never_echo_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_dsn(text)
    message = str(info.value)
    for word in ("secret", "never", "shown", "pw@"):
        assert word not in message


def test_not_a_string() -> None:
    with pytest.raises(ConfigError):
        parse_dsn(5432)  # type: ignore[arg-type]


def test_detection() -> None:
    assert is_url("postgresql://h") and is_url("http://x")
    assert looks_like_dsn("host=a") and looks_like_dsn("postgresql://h")
    assert not looks_like_dsn("app.db")
    assert not looks_like_dsn("/var/lib/app.db")
    assert not looks_like_dsn(":memory:")


keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
values = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_conninfo_round_trip(params: dict[str, str]) -> None:
    assert parse_dsn(format_conninfo(params)) == params


@settings(max_examples=100, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "postgres", "mysql", "mariadb"]),
    user=st.none() | values.filter(bool),
    password=st.none() | values,
    host=st.none() | st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True),
    port=st.none() | st.integers(1, 65535),
    database=st.none() | values.filter(bool),
    query=st.dictionaries(keys, values, max_size=3),
)
def test_url_round_trip(
    scheme: str,
    user: str | None,
    password: str | None,
    host: str | None,
    port: int | None,
    database: str | None,
    query: dict[str, str],
) -> None:
    def q(text: str) -> str:
        return quote(text, safe="")

    userinfo = ""
    if user is not None:
        userinfo = q(user) + (f":{q(password)}" if password is not None else "") + "@"
    hostport = (host or "") + (f":{port}" if port is not None else "")
    path = f"/{q(database)}" if database is not None else ""
    qs = "&".join(f"{q(k)}={q(v)}" for k, v in query.items())
    url = f"{scheme}://{userinfo}{hostport}{path}" + (f"?{qs}" if qs else "")
    expected: dict[str, str] = {}
    if user is not None:
        expected["user"] = user
        if password is not None:
            expected["password"] = password
    if host:
        expected["host"] = host
    if port is not None:
        expected["port"] = str(port)
    if database is not None:
        expected["dbname" if scheme.startswith("postgres") else "database"] = database
    expected.update(query)
    assert parse_dsn(url) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_config_error(text: str) -> None:
    try:
        result = parse_dsn(text)
    except ConfigError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in result.items())
