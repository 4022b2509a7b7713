"""Rules for statements that control the transaction or the session: BEGIN, COMMIT, SET,
temporary tables, PREPARE, cursors, LOCK, LISTEN, USE.

Each rule reads the upper-cased words of one statement (``toks``, the leading word at ``i``)
and answers with a Classification.
"""

from __future__ import annotations

import itertools

from clusterdb.core.statement_lex import Dialect
from clusterdb.core.statement_result import Classification, control, primary, replica

_SESSION = "SET changes session state"
_OBJECTS = frozenset({"TABLE", "VIEW", "SEQUENCE"})


def _pair(toks: list[str], first: str, second: str) -> bool:
    return any(a == first and b == second for a, b in itertools.pairwise(toks))


def _next(toks: list[str], i: int) -> str:
    return toks[i + 1] if i + 1 < len(toks) else ""


def begin(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """BEGIN / START TRANSACTION [modes]; MariaDB's BEGIN NOT ATOMIC is a block of code."""
    word = toks[i]
    rest = toks[i + 1 :]
    if word == "START" and _next(toks, i) != "TRANSACTION":
        return primary(f"START {_next(toks, i)} is not known to be read-only".strip())
    if rest[:2] == ["NOT", "ATOMIC"]:
        return primary("BEGIN NOT ATOMIC runs code")
    if not _pair(rest, "READ", "ONLY"):
        return control("begin", f"{word} starts a read-write transaction")
    if dialect == "postgresql" and "SERIALIZABLE" in rest:
        return control("begin-read-only", "a SERIALIZABLE transaction cannot run on a hot standby")
    opening = "START TRANSACTION" if word == "START" else word
    return control("begin-read-only", f"{opening} READ ONLY: may run on a replica", "replica")


def end(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """COMMIT, ROLLBACK (TO SAVEPOINT), PostgreSQL's END and ABORT, AND CHAIN, PREPARED."""
    word = toks[i]
    rest = toks[i + 1 :]
    if word in ("END", "ABORT") and dialect != "postgresql":
        return primary(f"{word} is not known to be read-only")
    if rest[:1] == ["PREPARED"]:
        return primary(f"{word} PREPARED finishes a prepared transaction")
    if "TO" in rest[:3]:
        return control("savepoint", "ROLLBACK TO SAVEPOINT stays in the transaction")
    if _pair(rest, "AND", "CHAIN"):
        return control("chain", f"{word} AND CHAIN starts the next transaction")
    if word in ("COMMIT", "END"):
        return control("commit", f"{word} ends the transaction")
    return control("rollback", f"{word} ends the transaction")


def savepoint(toks: list[str], i: int, dialect: Dialect) -> Classification:
    return control("savepoint", f"{toks[i]} stays in the transaction")


def xa(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """MySQL XA: START/BEGIN, COMMIT and ROLLBACK move the transaction; the rest stay in it."""
    verb = _next(toks, i)
    if verb in ("START", "BEGIN"):
        return control("begin", "XA START starts a transaction")
    if verb == "COMMIT":
        return control("commit", "XA COMMIT ends the transaction")
    if verb == "ROLLBACK":
        return control("rollback", "XA ROLLBACK ends the transaction")
    return primary(f"XA {verb} works on the transaction's server".strip())


def prepare(toks: list[str], i: int, dialect: Dialect) -> Classification:
    if _next(toks, i) == "TRANSACTION":
        return control("commit", "PREPARE TRANSACTION ends the transaction")
    return primary("PREPARE creates a prepared statement", "prepared statement")


def set_(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """SET: session state unless it lasts only for the transaction, or is global."""
    what = _next(toks, i)
    if dialect == "postgresql":
        if what in ("LOCAL", "TRANSACTION", "CONSTRAINTS"):
            return primary(f"SET {what} lasts until the transaction ends")
        return primary(_SESSION, _SESSION)
    if what == "@" and toks[i + 2 : i + 4] == ["@", "GLOBAL"]:
        what = "GLOBAL"
    if what in ("GLOBAL", "PERSIST", "PERSIST_ONLY") and "," not in toks:
        return primary(f"SET {what} changes a server setting")
    if what == "@" and _next(toks, i + 1) != "@":
        return primary("SET @variable sets a user variable", "user variable")
    return primary(_SESSION, _SESSION)


def create(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP[ORARY] TABLE / VIEW / SEQUENCE pins."""
    head = itertools.takewhile(lambda t: t not in _OBJECTS, toks[i + 1 : i + 6])
    if not {"TEMP", "TEMPORARY"}.isdisjoint(head):
        return primary("CREATE TEMPORARY creates session state", "temporary table")
    return primary("CREATE changes the schema")


def declare(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """PostgreSQL DECLARE ... CURSOR [WITH HOLD] FOR: a held cursor outlives the transaction."""
    head = toks[i : toks.index("FOR")] if "FOR" in toks else toks[i:]
    if _pair(head, "WITH", "HOLD"):
        return primary("DECLARE ... WITH HOLD opens a cursor", "WITH HOLD cursor")
    return primary("DECLARE opens a cursor")


def lock(toks: list[str], i: int, dialect: Dialect) -> Classification:
    if dialect == "postgresql":
        return primary("LOCK TABLE locks a table until the transaction ends")
    return primary("LOCK TABLES locks tables", "LOCK TABLES")


def flush(toks: list[str], i: int, dialect: Dialect) -> Classification:
    if _pair(toks, "READ", "LOCK"):
        return primary("FLUSH TABLES WITH READ LOCK locks tables", "FLUSH TABLES WITH READ LOCK")
    return primary("FLUSH changes server state")


def show(toks: list[str], i: int, dialect: Dialect) -> Classification:
    return replica("SHOW reads")


def copy(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """PostgreSQL COPY: FROM writes, TO STDOUT reads, TO a file or program writes there."""
    depth = 0
    for j in range(i + 1, len(toks)):
        tok = toks[j]
        depth += (tok == "(") - (tok == ")")
        if depth == 0 and tok == "FROM":
            return primary("COPY FROM writes")
        if depth == 0 and tok == "TO":
            if _next(toks, j) == "STDOUT":
                return replica("COPY TO STDOUT reads")
            return primary("COPY TO a file or program writes on the server")
    return primary("COPY is not known to be read-only")


_FIXED: dict[str, tuple[str, str | None]] = {
    "LISTEN": ("LISTEN waits for notifications", "LISTEN"),
    "USE": ("USE changes the default database", "USE changes the default database"),
    "HANDLER": ("HANDLER opens a table handler", "HANDLER"),
    "LOAD": ("LOAD writes data or loads a library", None),
    "DO": ("DO runs code", None),
    "CALL": ("CALL runs a procedure", None),
    "EXECUTE": ("EXECUTE runs a prepared statement", None),
    "DEALLOCATE": ("DEALLOCATE drops a prepared statement", None),
    "RESET": ("RESET changes session state", None),
    "DISCARD": ("DISCARD changes session state", None),
    "FETCH": ("FETCH reads a cursor of this session", None),
    "MOVE": ("MOVE moves a cursor of this session", None),
    "CLOSE": ("CLOSE closes a cursor of this session", None),
    "UNLOCK": ("UNLOCK releases locks", None),
    "UNLISTEN": ("UNLISTEN changes session state", None),
    "NOTIFY": ("NOTIFY sends a notification", None),
}
_VERBS = {
    "writes": "INSERT UPDATE DELETE MERGE REPLACE UPSERT TRUNCATE",
    "changes the schema": "ALTER DROP RENAME COMMENT GRANT REVOKE SECURITY IMPORT REASSIGN",
    "maintains tables (writes)": "VACUUM CLUSTER REINDEX REFRESH OPTIMIZE REPAIR CHECKPOINT",
}
for _what, _words in _VERBS.items():
    for _word in _words.split():
        _FIXED[_word] = (f"{_word} {_what}", None)


def fixed(toks: list[str], i: int, dialect: Dialect) -> Classification:
    """Statements whose first word decides: writes, DDL, code, cursors, session commands."""
    reason, pins = _FIXED[toks[i]]
    return primary(reason, pins)


HANDLERS = {
    "BEGIN": begin,
    "START": begin,
    "COMMIT": end,
    "ROLLBACK": end,
    "END": end,
    "ABORT": end,
    "SAVEPOINT": savepoint,
    "RELEASE": savepoint,
    "XA": xa,
    "PREPARE": prepare,
    "SET": set_,
    "CREATE": create,
    "DECLARE": declare,
    "LOCK": lock,
    "FLUSH": flush,
    "SHOW": show,
    "COPY": copy,
    **dict.fromkeys(_FIXED, fixed),
}
"""Leading word -> rule, for the statements of this module."""
