"""Statement classifier tables (tests/unit/scenarios/statements/*.json): every row, in each of
its dialects, classified as the table says; the fields of every answer well formed."""

from __future__ import annotations

import pytest
from statement_corpus import FIXTURE_FUNCTIONS, Row, rows

from clusterdb.core.statement import (
    Classification,
    Classifier,
    Dialect,
    classify,
    writing_functions,
    writing_functions_query,
)

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


def test_answers_are_cached_by_text_and_long_texts_are_not_kept() -> None:
    classifier = Classifier("postgresql", cache_size=4)
    first = classifier.classify("SELECT 1")
    assert classifier.classify("SELECT 1") is first
    assert classifier.cache_info().hits == 1
    for n in range(10):
        classifier.classify(f"SELECT {n}")
    assert classifier.cache_info().currsize == 4
    bulk = "INSERT INTO t VALUES " + ",".join(["(1)"] * 2000)
    assert classifier.classify(bulk).target == "primary"
    assert classifier.classify(bulk).target == "primary"
    assert classifier.cache_info().currsize == 4


def test_the_cluster_functions_add_to_the_built_in_ones() -> None:
    base = Classifier("postgresql")
    assert base.classify("SELECT audit(1)").target == "replica"
    more = base.with_functions(["Audit"])
    assert more.classify("SELECT audit(1)") == Classification(
        "primary", "SELECT ... audit() may write"
    )
    assert more.classify('SELECT public."AUDIT"(1)').target == "primary"
    assert more.classify("SELECT nextval('s')").target == "primary"
    assert base.classify("SELECT audit(1)").target == "replica"
    assert classify("SELECT audit(1)", "mysql", ["AUDIT"]).target == "primary"
    assert classify("SELECT audit(1)", "mysql").target == "replica"


def test_lookup_rows_become_lower_case_names_less_the_allow_list() -> None:
    rows = [("bump",), ("uuid_generate_v4",), ("Gen_Salt",), ("Touch",)]
    assert writing_functions(rows, "postgresql") == {"bump", "touch"}
    assert writing_functions(rows, "mysql") == {"bump", "uuid_generate_v4", "gen_salt", "touch"}
    assert "provolatile = 'v'" in writing_functions_query("postgresql")
    assert "SQL_DATA_ACCESS" in writing_functions_query("mysql")


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("mysql", "SELECT 'it\\'s; DELETE FROM t'"),
        ("postgresql", "SELECT 'a\\'; DELETE FROM t; -- '"),
    ],
)
def test_a_known_backslash_mode_reads_the_text_one_way(dialect: Dialect, sql: str) -> None:
    assert Classifier(dialect).classify(sql).target == "primary"
    assert Classifier(dialect, backslash_escapes=True).classify(sql).target == "replica"
    assert Classifier(dialect, backslash_escapes=False).classify(sql).target == "primary"
    assert Classifier(dialect, backslash_escapes=True).with_functions([]).classify(sql) == (
        Classifier(dialect, backslash_escapes=True).classify(sql)
    )


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="dialect"):
        Classifier("sqlite")  # type: ignore[arg-type]
