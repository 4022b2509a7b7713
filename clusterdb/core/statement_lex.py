"""SQL text to the words the statement classifier reads, in one ``re`` pass per dialect.

Strings, dollar quotes, comments and driver placeholders are cut out; what is left is split
into upper-case words, quoted identifiers (kept whole, quotes included) and the punctuation
the rules look at: ``( ) ; . = @ : ,``. Numbers and operators are dropped.

Fast path: one ``findall`` over the upper-cased text, the cut-out parts matching outside the
one capturing group. Slow path, a match-by-match loop over the text as written, for what one
regex cannot do: a hint in a comment, a nested PostgreSQL comment (depth counting), a tagged
PostgreSQL dollar quote (the tag is case-sensitive and must repeat).

Where the server's reading of the text depends on a session setting (a backslash in a string:
``standard_conforming_strings`` on PostgreSQL, ``NO_BACKSLASH_ESCAPES`` on MariaDB/MySQL), the
caller reads it both ways (:func:`readings`). A comment ends at the earliest point a server
could end it, so text is read as code rather than hidden when in doubt.
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
# A PostgreSQL comment that holds a nested "/*" comes out as the token "/*" (_NESTING), which
# sends the text to the slow path.
_BLOCK_COMMENT_PG = r"/\*(?:[^*/]++|\*(?!/)|/(?!\*))*+(?:\*/|\Z)"
_NESTING = r"/\*(?=(?:[^*/]++|\*(?!/)|/(?!\*))*+/\*)"
# MySQL runs the text of /*! ... */ and /*M! ... */: only the marker (and version) is cut.
_BLOCK_COMMENT_MY = r"/\*M?!\d{0,6}|/\*[\s\S]*?(?:\*/|\Z)"
_PLACEHOLDER = r"%\([^()\s]*\)[sSbBtT]"
_QUOTED_ID_PG = r'"(?:[^"]|"")*+(?:"|\Z)'
_QUOTED_ID_MY = r"`(?:[^`]|``)*+(?:`|\Z)"
_EMPTY_DOLLAR = r"(?<![\w$])\$\$[\s\S]*?(?:\$\$|\Z)"
_TAGGED_DOLLAR = r"(?<![\w$])\$(?P<tag>[^\W\d]\w*)\$(?:[\s\S]*?\$(?P=tag)\$|[\s\S]*)"
_TAG_START = r"(?<![\w$])\$[^\W\d]\w*\$"
_E_STRING = r"(?<![\w$])[Ee]'(?:[^'\\]++|\\[\s\S]|'')*+(?:'|[\s\S]*)"
_WORDS = r"[^\W\d][\w$]*|[();.=@:,]"
# The fast path tries words first (most positions start one), but leaves PostgreSQL's E''
# to the string alternatives. Numbers are matched (1abc is not ABC) but not kept.
_FAST_WORDS = {
    "postgresql": r"(?!E')[^\W\d][\w$]*+|[();.=@:,]",
    "mysql": r"[^\W\d][\w$]*+|[();.=@:,]",
}
_NUMBER = r"\d[\w$.]*+"


def _string(quote: str, backslash: bool) -> str:
    if backslash:
        return f"{quote}(?:[^{quote}\\\\]++|\\\\[\\s\\S]|{quote}{quote})*+(?:{quote}|[\\s\\S]*)"
    return f"{quote}(?:[^{quote}]++|{quote}{quote})*+(?:{quote}|[\\s\\S]*)"


def _parts(dialect: Dialect, backslash: bool) -> tuple[list[str], list[str], list[str]]:
    """(comments, other cut-out parts, quoted identifiers) of ``dialect``."""
    if dialect == "postgresql":
        strings = [_E_STRING, _string("'", backslash), _EMPTY_DOLLAR, _PLACEHOLDER]
        return [_LINE_COMMENT_PG, _BLOCK_COMMENT_PG], strings, [_QUOTED_ID_PG]
    strings = [_string("'", backslash), _string('"', backslash), _PLACEHOLDER]
    return [_LINE_COMMENT_MY, _BLOCK_COMMENT_MY], strings, [_QUOTED_ID_MY]


def _fast(dialect: Dialect, backslash: bool) -> re.Pattern[str]:
    comments, strings, quoted = _parts(dialect, backslash)
    slow = [_NESTING, _TAG_START] if dialect == "postgresql" else []
    words = "|".join([_FAST_WORDS[dialect], *quoted, *slow])
    return re.compile(f"({words})|(?:{'|'.join([*comments, *strings, _NUMBER])})")


def _slow(dialect: Dialect, backslash: bool) -> re.Pattern[str]:
    comments, strings, quoted = _parts(dialect, backslash)
    if dialect == "postgresql":
        strings.append(_TAGGED_DOLLAR)
        comments.append(r"(?P<nest>/\*)")
    return re.compile(f"(?P<comment>{'|'.join(comments)})|{'|'.join(strings)}|({quoted[0]})")


_KEYS: list[tuple[Dialect, bool]] = [(d, b) for d in ("postgresql", "mysql") for b in (False, True)]
_FAST = {key: _fast(*key) for key in _KEYS}
_SLOW = {key: _slow(*key) for key in _KEYS}
_WORD: dict[Dialect, re.Pattern[str]] = {
    "postgresql": re.compile(f"({_QUOTED_ID_PG}|{_WORDS})|{_NUMBER}"),
    "mysql": re.compile(f"({_QUOTED_ID_MY}|{_WORDS})|{_NUMBER}"),
}
_NEST = re.compile(r"/\*|\*/")
_HINT = re.compile(r"clusterdb\s*:\s*(primary|replica)\b", re.IGNORECASE)
DEFAULT_BACKSLASH: dict[Dialect, bool] = {"postgresql": False, "mysql": True}


def _nested_end(sql: str, start: int) -> int:
    """End of the PostgreSQL block comment starting at ``start``, counting nested ones."""
    depth = 0
    for mark in _NEST.finditer(sql, start):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(sql)


def _code(sql: str, pattern: re.Pattern[str], comments: list[str]) -> str:
    """``sql`` with every cut-out part replaced by a space (quoted identifiers kept), match
    by match; the comments are appended to ``comments``."""
    pieces: list[str] = []
    pos = 0
    while (m := pattern.search(sql, pos)) is not None:
        pieces.append(sql[pos : m.start()])
        end = m.end()
        if m.group("comment") is not None:
            if m.groupdict().get("nest") is not None:
                end = _nested_end(sql, m.start())
            comments.append(sql[m.start() : end])
        pieces.append(f" {m.group(m.re.groups) or ''}")
        pos = end
    pieces.append(sql[pos:])
    return "".join(pieces)


def _tagged(found: list[str]) -> bool:
    return any(t[0] == "$" for t in found)


def _hint(comments: list[str]) -> Hint | None:
    found = {m.group(1).lower() for c in comments for m in _HINT.finditer(c)}
    if not found:
        return None
    return "primary" if "primary" in found else "replica"


def tokens(sql: str, dialect: Dialect, backslash: bool) -> tuple[list[str], Hint | None]:
    """The words of ``sql`` (upper-cased) and the hint found in its comments, if any.

    ``backslash``: whether a backslash escapes a quote in a plain string. A hint is
    ``clusterdb:primary`` or ``clusterdb:replica`` inside any comment; primary wins."""
    if _HINT.search(sql) is None:
        found = [t for t in _FAST[dialect, backslash].findall(sql.upper()) if t]
        if dialect == "mysql" or not ("/*" in found or ("$" in sql and _tagged(found))):
            return found, None
    return tokens_slow(sql, dialect, backslash)


def tokens_slow(sql: str, dialect: Dialect, backslash: bool) -> tuple[list[str], Hint | None]:
    """:func:`tokens` by the slow path, for every text (the reference the fast path agrees
    with wherever it is used)."""
    comments: list[str] = []
    code = _code(sql, _SLOW[dialect, backslash], comments)
    return [t for t in _WORD[dialect].findall(code.upper()) if t], _hint(comments)


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
