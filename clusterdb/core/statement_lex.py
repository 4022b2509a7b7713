"""SQL text to the words the statement classifier reads: one pass of ``re`` per dialect.

Strings, dollar quotes, comments and driver placeholders are cut out; what is left is
upper-cased and split into words, quoted identifiers (kept whole, quotes included) and the few
punctuation marks the rules look at: ``( ) ; . = @ : ,``. Numbers and operators are dropped.

Where the server's reading of the text depends on a session setting (a backslash in a string:
``standard_conforming_strings`` on PostgreSQL, ``NO_BACKSLASH_ESCAPES`` on MariaDB/MySQL), the
caller scans both ways (:func:`readings`). Where a comment's end is ambiguous, the comment ends
at the earliest point a server could end it, so hidden text is read as code, never the reverse.
"""

from __future__ import annotations

import re
from typing import Literal

Dialect = Literal["postgresql", "mysql"]
Hint = Literal["primary", "replica"]

_LINE_COMMENT_PG = r"--[^\n\r]*"
# MySQL and MariaDB start a -- comment only when whitespace or a control character follows:
# `SELECT 1--1` is 1 - -1.
_LINE_COMMENT_MY = r"--(?=[\x00-\x20]|\Z)[^\n\r]*|\#[^\n\r]*"
# PostgreSQL nests block comments: a nested start is emitted as "/*" so that the caller can
# rescan with the depth-counting loop of _strip_nested (the regex cannot count).
_BLOCK_COMMENT_PG = r"/\*(?:[^*/]++|\*(?!/)|/(?!\*))*+(?:\*/|(?P<nest>/\*)|\Z)"
# MySQL runs the text of /*! ... */ and /*M! ... */: only the marker (and version) is cut.
_BLOCK_COMMENT_MY = r"/\*M?!\d{0,6}|/\*[\s\S]*?(?:\*/|\Z)"
_PLACEHOLDER = r"%\([^()\s]*\)s"
_QUOTED_ID_PG = r'(?P<ident>"(?:[^"]|"")*+(?:"|\Z))'
_QUOTED_ID_MY = r"(?P<ident>`(?:[^`]|``)*+(?:`|\Z))"
_DOLLAR = r"(?<![\w$])\$(?P<tag>(?:[^\W\d]\w*)?)\$(?:[\s\S]*?\$(?P=tag)\$|[\s\S]*)"
_E_STRING = r"(?<![\w$])[Ee]'(?:[^'\\]++|\\[\s\S]|'')*+(?:'|[\s\S]*)"


def _string(quote: str, backslash: bool) -> str:
    if backslash:
        return f"{quote}(?:[^{quote}\\\\]++|\\\\[\\s\\S]|{quote}{quote})*+(?:{quote}|[\\s\\S]*)"
    return f"{quote}(?:[^{quote}]++|{quote}{quote})*+(?:{quote}|[\\s\\S]*)"


def _opaque(dialect: Dialect, backslash: bool) -> re.Pattern[str]:
    """One alternation for everything that is not code; comments are in group ``comment``."""
    if dialect == "postgresql":
        parts = [
            f"(?P<comment>{_LINE_COMMENT_PG}|{_BLOCK_COMMENT_PG})",
            _E_STRING,
            _string("'", backslash),
            _QUOTED_ID_PG,
            _DOLLAR,
            _PLACEHOLDER,
        ]
    else:
        parts = [
            f"(?P<comment>{_LINE_COMMENT_MY}|{_BLOCK_COMMENT_MY})",
            _string("'", backslash),
            _string('"', backslash),
            _QUOTED_ID_MY,
            _PLACEHOLDER,
        ]
    return re.compile("|".join(parts))


# (dialect, backslash escapes in plain strings) -> pattern. The server default comes first.
_OPAQUE: dict[tuple[Dialect, bool], re.Pattern[str]] = {
    (d, b): _opaque(d, b) for d in ("postgresql", "mysql") for b in (False, True)
}
DEFAULT_BACKSLASH: dict[Dialect, bool] = {"postgresql": False, "mysql": True}
_TEMPLATE: dict[Dialect, str] = {"postgresql": r" \g<ident>\g<nest> ", "mysql": r" \g<ident> "}
_TOKEN = re.compile(r'"[^"]*"|`[^`]*`|[^\W\d][\w$]*|\d[\w$.]*|[();.=@:,]')
_NEST = re.compile(r"/\*|\*/")
_HINT = re.compile(r"clusterdb\s*:\s*(primary|replica)\b", re.IGNORECASE)


def _nested_end(sql: str, start: int) -> int:
    """End of the PostgreSQL block comment starting at ``start``, counting nested ones."""
    depth = 0
    for mark in _NEST.finditer(sql, start):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(sql)


def _strip_slow(sql: str, pattern: re.Pattern[str], comments: list[str]) -> str:
    """The code text of ``sql``, match by match: counts nested comments, collects comments."""
    pieces: list[str] = []
    pos = 0
    while (m := pattern.search(sql, pos)) is not None:
        pieces.append(sql[pos : m.start()])
        end = m.end()
        if m.group("comment") is not None:
            if m.groupdict().get("nest") is not None:
                end = _nested_end(sql, m.start())
            comments.append(sql[m.start() : end])
            pieces.append(" ")
        else:
            pieces.append(f" {m.group('ident') or ''} ")
        pos = end
    pieces.append(sql[pos:])
    return "".join(pieces)


def tokens(sql: str, dialect: Dialect, backslash: bool) -> tuple[list[str], Hint | None]:
    """The words of ``sql`` (upper-cased) and the hint found in its comments, if any.

    ``backslash``: whether a backslash escapes a quote in a plain string. A hint is
    ``clusterdb:primary`` or ``clusterdb:replica`` inside any comment; primary wins."""
    pattern = _OPAQUE[dialect, backslash]
    hint: Hint | None = None
    if _HINT.search(sql) is None:
        code = pattern.sub(_TEMPLATE[dialect], sql)
        if dialect == "postgresql" and "/*" in code:
            code = _strip_slow(sql, pattern, [])
    else:
        comments: list[str] = []
        code = _strip_slow(sql, pattern, comments)
        found = {m.group(1).lower() for c in comments for m in _HINT.finditer(c)}
        if found:
            hint = "primary" if "primary" in found else "replica"
    return _TOKEN.findall(code.upper()), hint


def readings(sql: str, dialect: Dialect, known: bool | None = None) -> list[bool]:
    """The backslash settings under which ``sql`` must be read: ``known`` when the session's
    setting is known; else the server default, and the other one too when a backslash could
    change where a string ends."""
    if known is not None:
        return [known]
    default = DEFAULT_BACKSLASH[dialect]
    if "\\" in sql:
        return [default, not default]
    return [default]
