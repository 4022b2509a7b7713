"""Parse connection strings into dicts: libpq conninfo (``key=value``) and URLs.

Used to name nodes and show their addresses, and to turn a DSN into keyword arguments for
drivers that take none (PyMySQL). Errors are :class:`~clusterdb.errors.ConfigError` and never
repeat a value from the string: a malformed string may hold a password anywhere, so messages
name positions and key names only.

Conninfo follows libpq: ``key = value`` pairs separated by whitespace; a value is either a
run of non-whitespace characters or single-quoted; a backslash escapes the next character in
both. Unlike libpq, ``key= other=value`` (an empty value left unquoted, so that libpq takes
the next pair as the value) is an error, as is an unquoted value that a backslash-escaped
space joins to the next pair (``host=a\\ password=x``): the next pair may be a password. URLs: ``scheme://[user[:password]@][host][:port][,host[:port]...][/dbname][?k=v&...]``
with percent-encoding; ``postgresql://`` and ``postgres://`` give ``dbname``, ``mysql://``
and ``mariadb://`` give ``database`` (each driver's own keyword). Several hosts stay one
comma-separated ``host`` (and ``port``) value, as libpq keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote

from clusterdb.errors import ConfigError

__all__ = ["URL_SCHEMES", "format_conninfo", "is_url", "looks_like_dsn", "parse_dsn"]

URL_SCHEMES: Mapping[str, str] = {
    "postgresql": "dbname",
    "postgres": "dbname",
    "mysql": "database",
    "mariadb": "database",
}
"""Accepted URL schemes and the key their path (the database name) goes to."""

_WHITESPACE = " \t\n\r\f\v"  # libpq's isspace(): ASCII only
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]*)://")
_CONNINFO_START = re.compile(r"\s*[^\s=]+\s*=")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BARE_SAFE = re.compile(r"[^\s'\\]+")
_PAIR_START = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*=")


def is_url(s: str) -> bool:
    """True when ``s`` starts like a URL (``scheme://``), supported scheme or not."""
    return _SCHEME.match(s) is not None


def looks_like_dsn(s: str) -> bool:
    """True for a URL or a conninfo string (``key=value ...``); False for e.g. a file path."""
    return is_url(s) or _CONNINFO_START.match(s) is not None


def parse_dsn(s: str) -> dict[str, str]:
    """Parse a conninfo string or URL into ``{key: value}`` (later duplicates win).

    An empty or blank string gives ``{}``. Raises ConfigError on malformed input.
    """
    if not isinstance(s, str):
        raise ConfigError(f"a DSN must be a string, not {type(s).__name__}")
    if is_url(s):
        return _parse_url(s.strip())
    return _parse_conninfo(s)


def format_conninfo(params: Mapping[str, object]) -> str:
    """The conninfo string for ``params`` (values quoted when needed); parses back equal."""
    parts = []
    for key, value in params.items():
        if not key or any(c in _WHITESPACE or c == "=" for c in key):
            raise ConfigError(f"invalid conninfo key {key!r}")
        text = str(value)
        if not _BARE_SAFE.fullmatch(text):
            text = "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        parts.append(f"{key}={text}")
    return " ".join(parts)


# -- conninfo ------------------------------------------------------------------------------


def _parse_conninfo(s: str) -> dict[str, str]:
    out: dict[str, str] = {}
    pos, end = 0, len(s)
    while True:
        pos = _skip_space(s, pos)
        if pos >= end:
            return out
        key, pos = _conninfo_key(s, pos)
        start = _skip_space(s, pos)
        if start > pos and s[pos - 2] not in _WHITESPACE and _PAIR_START.match(s, start):
            # libpq takes "password=x" as the value of "host= password=x": the password
            # would become a host name, shown wherever the node is named (found by fuzzing).
            raise ConfigError(
                f"malformed conninfo string: {key!r} has an empty value followed by another "
                f"key=value pair (write {key}='' for an empty value)"
            )
        value, pos = _conninfo_value(s, start, key)
        out[key] = value


def _skip_space(s: str, pos: int) -> int:
    while pos < len(s) and s[pos] in _WHITESPACE:
        pos += 1
    return pos


def _conninfo_key(s: str, start: int) -> tuple[str, int]:
    pos = start
    while pos < len(s) and s[pos] != "=" and s[pos] not in _WHITESPACE:
        pos += 1
    key = s[start:pos]
    pos = _skip_space(s, pos)
    if pos >= len(s) or s[pos] != "=" or not key:
        # The word may be half of a password typed with a space: never repeat it.
        what = "a value" if not key else f"the word at position {start + 1}"
        raise ConfigError(
            f"malformed conninfo string: missing key=value around {what} "
            "(write key=value pairs; quote values holding spaces: key='a b')"
        )
    return key, pos + 1


def _conninfo_value(s: str, pos: int, key: str) -> tuple[str, int]:
    chars: list[str] = []
    if pos < len(s) and s[pos] == "'":
        pos += 1
        while True:
            if pos >= len(s):
                raise ConfigError(
                    f"malformed conninfo string: unterminated quoted value for {key!r}"
                )
            char = s[pos]
            if char == "\\" and pos + 1 < len(s):
                chars.append(s[pos + 1])
                pos += 2
            elif char == "'":
                return "".join(chars), pos + 1
            else:
                chars.append(char)
                pos += 1
    while pos < len(s) and s[pos] not in _WHITESPACE:
        if s[pos] == "\\":
            pos += 1
            if pos >= len(s):
                break
            if s[pos] in _WHITESPACE and _PAIR_START.match(s, pos + 1):
                # libpq reads "host=a\\ password=x" as the host "a password=x": the password
                # would be shown wherever the node is named (found by fuzzing).
                raise ConfigError(
                    f"malformed conninfo string: the value of {key!r} runs into the next "
                    "key=value pair through a backslash-escaped space (quote a value that "
                    f"holds spaces: {key}='a b')"
                )
        chars.append(s[pos])
        pos += 1
    return "".join(chars), pos


# -- URLs -----------------------------------------------------------------------------------


def _parse_url(s: str) -> dict[str, str]:
    match = _SCHEME.match(s)
    assert match is not None
    scheme = match.group(1).lower()
    if scheme not in URL_SCHEMES:
        known = ", ".join(f"{k}://" for k in URL_SCHEMES)
        raise ConfigError(f"unsupported URL scheme {match.group(1)!r}:// (expected one of {known})")
    rest = s[match.end() :]
    out: dict[str, str] = {}
    slash = rest.find("/")
    authority, path = (rest, "") if slash < 0 else (rest[:slash], rest[slash + 1 :])
    at = authority.rfind("@")
    if at >= 0:
        _parse_userinfo(authority[:at], out)
        authority = authority[at + 1 :]
    query = ""
    if "?" in authority:  # "postgresql://host?sslmode=require" has no path
        authority, query = authority.split("?", 1)
        if path:
            raise ConfigError("malformed URL: '?' before the database path")
    elif "?" in path:
        path, query = path.split("?", 1)
    _parse_hosts(authority, out)
    if path:
        out[URL_SCHEMES[scheme]] = _decode(path, "database name")
    _parse_query(query, out)
    return out


def _parse_userinfo(userinfo: str, out: dict[str, str]) -> None:
    user, sep, password = userinfo.partition(":")
    if user:
        out["user"] = _decode(user, "user name")
    if sep:
        out["password"] = _decode(password, "password")


def _parse_hosts(hostspec: str, out: dict[str, str]) -> None:
    if not hostspec:
        return
    hosts: list[str] = []
    ports: list[str] = []
    for part in hostspec.split(","):
        host, port = _split_host_port(part)
        hosts.append(_decode(host, "host"))
        if port and not port.isdigit():
            raise ConfigError("malformed URL: a port is not a number")
        ports.append(port)
    if any(hosts):
        out["host"] = ",".join(hosts)
    if any(ports):
        out["port"] = ",".join(ports)


def _split_host_port(part: str) -> tuple[str, str]:
    if part.startswith("["):
        close = part.find("]")
        if close < 0:
            raise ConfigError("malformed URL: '[' without ']' in an IPv6 host")
        host, after = part[1:close], part[close + 1 :]
        if after and not after.startswith(":"):
            raise ConfigError("malformed URL: unexpected text after an IPv6 host")
        return host, after[1:]
    host, _, port = part.partition(":")
    return host, port


def _parse_query(query: str, out: dict[str, str]) -> None:
    for item in query.split("&"):
        if not item:
            continue
        raw_key, sep, raw_value = item.partition("=")
        if not sep:
            raise ConfigError("malformed URL: a query parameter has no '=' (write ?key=value)")
        key = _decode(raw_key, "query parameter name")
        if not key:
            raise ConfigError("malformed URL: a query parameter has an empty name")
        out[key] = _decode(raw_value, f"value of query parameter {key!r}")


def _decode(text: str, what: str) -> str:
    if _BAD_PERCENT.search(text):
        raise ConfigError(f"malformed URL: invalid percent-encoding in the {what}")
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ConfigError(f"malformed URL: the {what} is not valid UTF-8 once decoded") from None
