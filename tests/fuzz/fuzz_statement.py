"""atheris (coverage-guided) target: the SQL statement classifier, clusterdb.core.statement*.

Run: ``python tests/fuzz/fuzz_statement.py [libFuzzer flags]`` (``make fuzz`` runs it for
longer; tests/fuzz/test_fuzz_targets.py runs it briefly inside ``make test``).

The classifier's contract: it never raises, and never sends to a replica a string that could
write. Checked on every input, for both dialects:

* no exception, and a well-formed answer (a target, a reason; a pinned session or a
  transaction statement is never sent to a replica on its own say);
* the cached answer equals the uncached one, and asking twice gives the same answer;
* an unknown backslash setting is the safe reading: replica only if both readings say so;
* a string that begins with a write stays on the primary whatever follows;
* a replica answer survives no added write: the same text after ``DELETE FROM t;`` goes to
  the primary.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["clusterdb.core"]):
    from clusterdb.core.statement import Classifier, Dialect

DIALECTS: tuple[Dialect, ...] = ("postgresql", "mysql")
CACHED = {d: Classifier(d) for d in DIALECTS}
UNCACHED = {d: Classifier(d, cache_size=0) for d in DIALECTS}
READINGS = {
    (d, b): Classifier(d, backslash_escapes=b, cache_size=0)
    for d in DIALECTS
    for b in (False, True)
}
WRITES = ("DELETE FROM t", "INSERT INTO t VALUES (1)", "UPDATE t SET a = 1")


def check(sql: str, dialect: Dialect) -> None:
    got = CACHED[dialect].classify(sql)
    assert got.target in ("replica", "primary") and got.reason, got
    assert got == UNCACHED[dialect].classify(sql) == CACHED[dialect].classify(sql), sql
    if got.target == "replica":
        assert got.pins_session is None, (sql, got)
        both = [READINGS[dialect, b].classify(sql).target for b in (False, True)]
        assert both == ["replica", "replica"], (sql, both)
    for write in WRITES:
        assert UNCACHED[dialect].classify(f"{write}; {sql}").target == "primary", sql


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    sql = provider.ConsumeUnicodeNoSurrogates(512)
    for dialect in DIALECTS:
        check(sql, dialect)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
