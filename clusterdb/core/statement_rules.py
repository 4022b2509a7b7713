"""The classifier's rules over the words of a statement string (see statement_lex).

The string is split at ``;`` into statements. A statement's leading word picks its rule; a
read (SELECT, WITH, VALUES, TABLE, SHOW, EXPLAIN without ANALYZE, COPY TO STDOUT) goes to a
replica unless a word anywhere in it locks rows (FOR UPDATE/SHARE, LOCK IN SHARE MODE), writes
(a data-modifying WITH, SELECT INTO, NEXT VALUE FOR) or calls a function that may write, lock
or read session state. An unknown leading word goes to the primary.
"""

from __future__ import annotations

from collections.abc import Callable

from clusterdb.core import statement_control as control
from clusterdb.core.statement_functions import Rule, Vocabulary
from clusterdb.core.statement_lex import Dialect
from clusterdb.core.statement_result import (
    EMPTY,
    Classification,
    Target,
    combine,
    primary,
    replica,
)

_LOCKING = {"UPDATE": "UPDATE", "SHARE": "SHARE", "NO": "NO KEY UPDATE", "KEY": "KEY SHARE"}
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT"})
_SESSION_VARIABLES = frozenset({"IDENTITY", "LAST_INSERT_ID", "INSERT_ID", "LAST_GTID"})
_READS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_EXPLAIN_OPTIONS = frozenset(
    {"ANALYZE", "ANALYSE", "VERBOSE", "EXTENDED", "PARTITIONS", "FORMAT", "=", "JSON", "TREE"}
)
# What MariaDB's ANALYZE can run (ANALYZE TABLE t is maintenance).
_RUNNABLE = frozenset({"SELECT", "WITH", "VALUES", "(", "INSERT", "UPDATE", "DELETE", "REPLACE"})
# Leading words whose statement does not run the expressions in it (or only defines them).
_DEFINES = frozenset({"EXPLAIN", "DESCRIBE", "DESC", "ANALYZE", "ANALYSE", "CREATE", "ALTER"})
_DEFINES |= {"DROP", "DECLARE", "PREPARE", "SHOW", "COMMENT", "GRANT", "REVOKE"}
_COMPOUND_STARTS = frozenset({"IF", "WHILE", "LOOP", "REPEAT", "CASE"})
_STORED_PROGRAMS = frozenset({"PROCEDURE", "FUNCTION", "TRIGGER", "EVENT"})


def _at(toks: list[str], i: int) -> str:
    return toks[i] if 0 <= i < len(toks) else ""


def _into(toks: list[str], i: int, dialect: Dialect) -> Rule:
    target = _at(toks, i + 1)
    if target == "@":
        return ("INTO @variable sets a user variable", "user variable")
    if target in ("OUTFILE", "DUMPFILE"):
        return (f"INTO {target} writes a file on the server", None)
    if target in ("TEMP", "TEMPORARY"):
        return ("INTO TEMPORARY creates a table", "temporary table")
    if dialect == "postgresql":
        return ("INTO creates a table", None)
    return ("INTO sets variables", None)


def _variable(toks: list[str], i: int) -> Rule | None:
    """MySQL ``@@last_insert_id`` and friends, and ``@name := value``."""
    if _at(toks, i + 1) == "@":
        j = i + 2
        if _at(toks, j) in ("SESSION", "LOCAL") and _at(toks, j + 1) == ".":
            j += 2
        if _at(toks, j) in _SESSION_VARIABLES:
            return (f"@@{toks[j].lower()} reads this session's state", None)
        return None
    if _at(toks, i - 1) != "@" and toks[i + 2 : i + 4] == [":", "="]:
        return ("@variable := sets a user variable", "user variable")
    return None


def _hit(toks: list[str], i: int, v: Vocabulary) -> Rule | None:
    tok = toks[i]
    after = _at(toks, i + 1)
    if tok == "FOR":
        return (f"FOR {_LOCKING[after]} locks rows", None) if after in _LOCKING else None
    if tok == "LOCK":
        return ("LOCK IN SHARE MODE locks rows", None) if after == "IN" else None
    if tok in _DML and after != "(":
        return (f"{tok} writes", None)
    if tok == "INTO":
        return _into(toks, i, v.dialect)
    if tok in ("NEXT", "PREVIOUS"):
        if toks[i + 1 : i + 3] != ["VALUE", "FOR"]:
            return None
        if tok == "NEXT":
            return ("NEXT VALUE FOR writes a sequence", None)
        return ("PREVIOUS VALUE FOR reads this session's state", None)
    if tok == "@":
        return _variable(toks, i)
    if after == "(":
        return v.functions.get(tok.strip('"`'))
    return None


def hits(toks: list[str], v: Vocabulary) -> list[Rule]:
    """Every rule that a word of ``toks`` triggers, in order."""
    found = []
    for i, tok in enumerate(toks):
        if tok in v.markers and (rule := _hit(toks, i, v)) is not None:
            found.append(rule)
    return found


def _explain(toks: list[str], i: int, v: Vocabulary) -> Classification:
    """EXPLAIN runs nothing (but MariaDB refuses to explain a write when read-only); EXPLAIN
    ANALYZE runs the statement: that statement decides."""
    j = i + 1
    analyze = False
    if _at(toks, j) == "(":
        close = toks.index(")", j) if ")" in toks[j:] else len(toks)
        analyze = not {"ANALYZE", "ANALYSE"}.isdisjoint(toks[j:close])
        j = close + 1
    while _at(toks, j) in _EXPLAIN_OPTIONS:
        analyze = analyze or toks[j] in ("ANALYZE", "ANALYSE")
        j += 1
    if _at(toks, j) == "FOR":
        return primary(f"{toks[i]} FOR CONNECTION names a connection of one server")
    if not analyze and v.dialect == "mysql" and not _DML.isdisjoint(toks[j:]):
        return primary(f"MariaDB refuses {toks[i]} of a write on a read-only server")
    if not analyze:
        return replica(f"{toks[i]} does not run the statement")
    inner = statement(toks[j:], v)
    return Classification(inner.target, f"EXPLAIN ANALYZE runs: {inner.reason}", inner.pins_session)


def _analyze(toks: list[str], i: int, v: Vocabulary) -> Classification:
    """MariaDB's ANALYZE <statement> runs it; ANALYZE [TABLE] updates statistics."""
    j = i + 1
    while _at(toks, j) in ("FORMAT", "=", "JSON"):
        j += 1
    if v.dialect == "mysql" and _at(toks, j) in _RUNNABLE:
        inner = statement(toks[j:], v)
        return Classification(inner.target, f"ANALYZE runs: {inner.reason}", inner.pins_session)
    return primary("ANALYZE updates table statistics")


def _set(toks: list[str], i: int, v: Vocabulary) -> Classification:
    """MariaDB's SET STATEMENT ... FOR <statement> sets variables for that statement only."""
    if v.dialect == "mysql" and _at(toks, i + 1) == "STATEMENT" and "FOR" in toks:
        return statement(toks[toks.index("FOR") + 1 :], v)
    return control.set_(toks, i, v.dialect)


def _read(toks: list[str], i: int, v: Vocabulary) -> Classification:
    return replica(f"{toks[i]} reads")


_RULES: dict[str, Callable[[list[str], int, Vocabulary], Classification]] = {
    **dict.fromkeys(_READS, _read),
    **dict.fromkeys(("EXPLAIN", "DESCRIBE", "DESC"), _explain),
    **dict.fromkeys(("ANALYZE", "ANALYSE"), _analyze),
    "SET": _set,
}


def statement(toks: list[str], v: Vocabulary) -> Classification:
    """Classify one statement (no ``;`` in ``toks``)."""
    if not toks:
        return EMPTY
    i = 0
    while _at(toks, i) == "(":
        i += 1
    lead = _at(toks, i)
    if lead in _RULES:
        base = _RULES[lead](toks, i, v)
    elif lead in control.HANDLERS and i == 0:
        base = control.HANDLERS[lead](toks, i, v.dialect)
    else:
        base = primary(f"{lead or '('} is not known to be read-only")
    if lead in _DEFINES or v.markers.isdisjoint(toks):
        return base
    found = hits(toks, v)
    if not found:
        return base
    pins = base.pins_session or next((p for _, p in found if p), None)
    if base.target == "replica":
        return Classification("primary", f"{lead} ... {found[0][0]}", pins, base.transaction)
    return Classification(base.target, base.reason, pins, base.transaction)


def _opens_compound(part: list[str]) -> bool:
    """MySQL: a stored program or compound statement, whose body holds ``;``."""
    if not part:
        return False
    if part[0] == "CREATE":
        return not _STORED_PROGRAMS.isdisjoint(part)
    return part[0] in _COMPOUND_STARTS or part[:3] == ["BEGIN", "NOT", "ATOMIC"]


def split(toks: list[str], dialect: Dialect) -> list[list[str]]:
    """The statements of a string, without empty ones (unless all are empty)."""
    if ";" not in toks:
        return [toks]
    parts: list[list[str]] = []
    start = 0
    for j, tok in enumerate(toks):
        if tok != ";":
            continue
        part = toks[start:j]
        if dialect == "mysql" and _opens_compound(part):
            parts.append(toks[start:])
            start = len(toks)
            break
        parts.append(part)
        start = j + 1
    parts.append(toks[start:])
    return [p for p in parts if p] or [[]]


def classify_tokens(toks: list[str], v: Vocabulary, hint: Target | None) -> Classification:
    """The answer for a whole statement string; a hint decides the target (and only it)."""
    result = combine([statement(part, v) for part in split(toks, v.dialect)])
    if hint is None:
        return result
    return Classification(hint, f"hint clusterdb:{hint}", result.pins_session, result.transaction)
