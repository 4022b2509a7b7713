"""Statement classifier: may this SQL string run on a replica, or must it go to the primary?

Conservative: a string goes to a replica only when every statement in it is known to read
and nothing in it locks rows, writes, calls a function that may write, or starts session
state; anything unknown goes to the primary. Comments, every kind of quoting (dollar quotes,
E'' strings, nested comments on PostgreSQL; backticks, # comments, executable /*! */ comments
on MariaDB/MySQL) and driver placeholders (%s, %(name)s) are understood. A comment
``/* clusterdb:primary */`` (or ``clusterdb:replica``) decides the target.

Pure: no I/O. The cluster's own functions that may write come from the lookup queries below,
run once per cluster by the caller, turned into names by :func:`writing_functions`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from clusterdb.core.statement_functions import (
    MYSQL_FUNCTIONS,
    MYSQL_WRITING_FUNCTIONS_QUERY,
    POSTGRESQL_FUNCTIONS,
    POSTGRESQL_READ_ONLY_VOLATILE,
    POSTGRESQL_WRITING_FUNCTIONS_QUERY,
    vocabulary,
    writing_functions,
)
from clusterdb.core.statement_lex import Dialect, readings, tokens
from clusterdb.core.statement_result import Classification, Target, TransactionKind, either
from clusterdb.core.statement_rules import classify_tokens

__all__ = [
    "MYSQL_FUNCTIONS",
    "MYSQL_WRITING_FUNCTIONS_QUERY",
    "POSTGRESQL_FUNCTIONS",
    "POSTGRESQL_READ_ONLY_VOLATILE",
    "POSTGRESQL_WRITING_FUNCTIONS_QUERY",
    "Classification",
    "Classifier",
    "Dialect",
    "Target",
    "TransactionKind",
    "classify",
    "writing_functions",
    "writing_functions_query",
]

CACHE_SIZE = 1024
CACHE_MAX_CHARS = 4096
"""Longer strings (bulk INSERTs...) are classified every time rather than kept in the cache."""


def writing_functions_query(dialect: Dialect) -> str:
    """The query listing the cluster's own functions that may write (one name per row)."""
    if dialect == "postgresql":
        return POSTGRESQL_WRITING_FUNCTIONS_QUERY
    return MYSQL_WRITING_FUNCTIONS_QUERY


class Classifier:
    """Classifies statement strings for one cluster: its dialect and its functions that may
    write (lower-case names, from :func:`writing_functions`; the built-in ones are always
    known). Immutable; answers are cached by statement text (LRU, ``cache_size`` strings of up
    to CACHE_MAX_CHARS characters). Thread-safe.

    ``backslash_escapes``: whether a backslash escapes a quote in a plain string on this
    session (PostgreSQL: ``standard_conforming_strings`` off; MariaDB/MySQL: no
    ``NO_BACKSLASH_ESCAPES``). None: unknown, a string with a backslash is read both ways and
    goes to the primary if either reading needs it."""

    __slots__ = ("_backslash", "_cached", "_vocabulary", "dialect", "writing_functions")

    def __init__(
        self,
        dialect: Dialect,
        writing_functions: Iterable[str] = (),
        *,
        backslash_escapes: bool | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        if dialect not in ("postgresql", "mysql"):
            raise ValueError(f"dialect must be 'postgresql' or 'mysql', not {dialect!r}")
        self.dialect: Dialect = dialect
        self.writing_functions = frozenset(f.lower() for f in writing_functions)
        self._vocabulary = vocabulary(dialect, self.writing_functions)
        self._backslash = backslash_escapes
        self._cached = functools.lru_cache(maxsize=cache_size)(self._classify)

    def __repr__(self) -> str:
        return f"Classifier({self.dialect!r}, {len(self.writing_functions)} writing functions)"

    def classify(self, sql: str) -> Classification:
        """Where ``sql`` (one or more statements) may run, and why."""
        if len(sql) <= CACHE_MAX_CHARS:
            return self._cached(sql)
        return self._classify(sql)

    def with_functions(self, names: Iterable[str]) -> Classifier:
        """A classifier for the same dialect that also knows ``names`` (its own cache)."""
        names = self.writing_functions | {n.lower() for n in names}
        return Classifier(self.dialect, names, backslash_escapes=self._backslash)

    def cache_info(self) -> functools._CacheInfo:
        return self._cached.cache_info()

    def _classify(self, sql: str) -> Classification:
        answers = []
        for backslash in readings(sql, self.dialect, self._backslash):
            toks, hint = tokens(sql, self.dialect, backslash)
            answers.append(classify_tokens(toks, self._vocabulary, hint))
        return answers[0] if len(answers) == 1 else either(answers)


@functools.lru_cache(maxsize=16)
def _classifier(dialect: Dialect, functions: frozenset[str]) -> Classifier:
    return Classifier(dialect, functions)


def classify(
    sql: str, dialect: Dialect, writing_functions: Iterable[str] = frozenset()
) -> Classification:
    """``Classifier(dialect, writing_functions).classify(sql)``, with the classifier (and its
    cache) kept for the next call with the same dialect and functions."""
    return _classifier(dialect, frozenset(f.lower() for f in writing_functions)).classify(sql)
