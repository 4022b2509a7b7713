"""Statement classifier tables (tests/unit/scenarios/statements/*.json): every row, in each of
its dialects, classified as the table says; the fields of every answer well formed."""

from __future__ import annotations

import pytest
from statement_corpus import FIXTURE_FUNCTIONS, Row, rows

from clusterdb.core.statement import Classifier

CLASSIFIERS = {d: Classifier(d, FIXTURE_FUNCTIONS) for d in ("postgresql", "mysql")}
ROWS = rows()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row) -> None:
    got = CLASSIFIERS[row.dialect].classify(row.sql)
    assert row.mismatch(got) is None, (row.sql, row.mismatch(got))


def test_tables_cover_every_rule() -> None:
    assert len(ROWS) >= 400
    assert {r.table for r in ROWS} >= {"reads", "writes", "locks", "session", "transactions"}
    assert sum(r.target == "replica" for r in ROWS) >= 100
    assert sum(r.refused for r in ROWS) >= 60
    assert {r.transaction for r in ROWS} >= {
        None,
        "begin",
        "begin-read-only",
        "commit",
        "rollback",
        "savepoint",
        "chain",
    }
