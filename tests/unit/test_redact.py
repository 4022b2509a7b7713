"""Redactor: known secrets and password-looking fields never reach the output."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from clusterdb.core.redact import MAX_LINE, Redactor, is_secret_key

SECRET = "s3cr3t-Canary!"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password=hunter2 host=a", "password=*** host=a"),
        ("PASSWORD = hunter2", "PASSWORD = ***"),
        ("pwd=x;server=a", "pwd=***;server=a"),
        ("passwd: hunter2", "passwd: ***"),
        ("password='a b c' host=h", "password=*** host=h"),
        ('"password": "x y"', '"password": ***'),
        ("{'password': 'x'}", "{'password': ***}"),
        ("sslpassword=k PGPASSWORD=v", "sslpassword=*** PGPASSWORD=***"),
        ("postgresql://app:hunter2@h:5432/db", "postgresql://app:***@h:5432/db"),
        ("mysql://root:p@ss@h/db", "mysql://root:***@h/db"),
        ("?user=u&password=p&x=1", "?user=u&password=***&x=1"),
        # Not secrets: left alone.
        ("Access denied for user 'app'@'h' (using password: YES)", None),
        ('FATAL:  password authentication failed for user "app"', None),
        ("password_env = 'APP_DB_PASSWORD'", None),
        ("postgresql://app@h/db", None),
    ],
)
def test_scrubs_password_fields_without_knowing_them(text: str, expected: str | None) -> None:
    assert Redactor().scrub(text) == (text if expected is None else expected)


def test_scrubs_known_secrets_anywhere() -> None:
    r = Redactor([SECRET])
    out = r.scrub(f"auth failed for {SECRET} (again {SECRET})")
    assert SECRET not in out
    assert out == "auth failed for *** (again ***)"


@pytest.mark.parametrize(
    "form",
    [
        "s3cr3t-Canary%21",  # percent-encoded in a URL
        "s3cr3t-Canary!",
    ],
)
def test_scrubs_encoded_forms(form: str) -> None:
    assert "Canary" not in Redactor([SECRET]).scrub(f"dsn: x://u:{form}@h")
    assert "Canary" not in Redactor([SECRET]).scrub(f"value {form} here")


def test_scrubs_repr_and_conninfo_escaped_forms() -> None:
    secret = "it's\\x"
    r = Redactor([secret])
    assert "it" not in r.scrub(repr({"k": secret}))
    assert "it" not in r.scrub("x='it\\'s\\\\x'")


def test_longest_secret_first() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.scrub("xx abcdef yy") == "xx *** yy"


def test_short_secrets_are_masked_too() -> None:
    assert Redactor(["a"]).scrub("a cat") == "*** c***t"


def test_mask_avoids_the_characters_of_secrets() -> None:
    r = Redactor(["*", "pw"])
    assert "*" not in r.mask
    out = r.scrub("a*b pw")
    assert "*" not in out and "pw" not in out


def test_empty_secrets_ignored() -> None:
    assert Redactor(["", ""]).scrub("text") == "text"


def test_immutable_and_repr_hides_secrets() -> None:
    r = Redactor([SECRET])
    with pytest.raises(AttributeError):
        r._mask = "x"
    assert SECRET not in repr(r)
    assert "1 secret" in repr(r)


def test_with_secrets_adds() -> None:
    r = Redactor(["one"]).with_secrets(["two"])
    assert r.scrub("one two three") == "*** *** three"


def test_one_line_format() -> None:
    exc = ConnectionRefusedError(111, "Connection refused")
    assert Redactor().one_line(exc) == "ConnectionRefusedError: [Errno 111] Connection refused"


def test_one_line_takes_first_non_empty_line_and_collapses_whitespace() -> None:
    exc = RuntimeError("\n\n  connection   to server\tfailed  \nIs the server running?")
    assert Redactor().one_line(exc) == "RuntimeError: connection to server failed"


def test_one_line_empty_message() -> None:
    assert Redactor().one_line(TimeoutError()) == "TimeoutError"


def test_one_line_truncates() -> None:
    line = Redactor().one_line(ValueError("x" * 1000))
    assert len(line) <= MAX_LINE + 1
    assert line.endswith("…")


def test_one_line_scrubs_secret_split_across_lines() -> None:
    secret = "multi\nline"
    assert "multi" not in Redactor([secret]).one_line(ValueError(f"bad {secret} here"))


def test_one_line_scrubs_secret_formed_by_collapsing_whitespace() -> None:
    secret = "a b"
    assert secret not in Redactor([secret]).one_line(ValueError("x a   b y"))


def test_one_line_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert Redactor().one_line(Broken()) == "Broken: <message unavailable>"


def test_is_secret_key() -> None:
    assert is_secret_key("password") and is_secret_key("sslpassword") and is_secret_key("PWD")
    assert is_secret_key("api_token") and is_secret_key("client_secret")
    assert not is_secret_key("user") and not is_secret_key("host")


secrets = st.text(min_size=1, max_size=12)
texts = st.text(max_size=40)


@settings(max_examples=300, deadline=None)
@given(secret=secrets, before=texts, after=texts, others=st.lists(secrets, max_size=3))
def test_secret_never_in_scrub_output(
    secret: str, before: str, after: str, others: list[str]
) -> None:
    r = Redactor([secret, *others])
    out = r.scrub(before + secret + after)
    assert secret not in out
    for other in others:
        assert other not in out


@settings(max_examples=300, deadline=None)
@given(secret=secrets, before=texts, after=texts, long_prefix=st.integers(0, 400))
def test_secret_never_in_one_line_output(
    secret: str, before: str, after: str, long_prefix: int
) -> None:
    r = Redactor([secret])
    exc = RuntimeError("." * long_prefix + before + secret + after)
    line = r.one_line(exc)
    assert secret not in line
    assert "\n" not in line


dsn_safe = st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(password=st.text(min_size=4, max_size=16), user=dsn_safe, host=dsn_safe)
def test_unknown_passwords_in_dsns_are_masked(password: str, user: str, host: str) -> None:
    """Without being told the secret: the field patterns alone hide it."""
    assume(password.strip() == password and "@" not in password and "/" not in password)
    assume(not any(c.isspace() for c in password))
    # A password that is part of the masked text itself ("user", "host") proves nothing.
    assume(password not in f"postgresql://{user}:***@{host}/db")
    assume(password not in f"host={host} password=*** user={user}")
    r = Redactor()
    url = f"postgresql://{user}:{password}@{host}/db"
    assert password not in r.scrub(f"failed: {url}")
    quoted = password.replace("\\", "\\\\").replace("'", "\\'")
    conninfo = f"host={host} password='{quoted}' user={user}"
    assert password not in r.scrub(conninfo)
