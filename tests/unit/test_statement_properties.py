"""Properties of the statement classifier, over the scenario tables, arbitrary text and the
statements of MariaDB's own regression suite (package mariadb-test-data).

* Wrapping a statement in comments and whitespace does not change its answer.
* A write before anything, or after a complete statement, keeps the string on the primary.
* Case does not matter (outside MariaDB's /*M! marker and placeholders).
* Arbitrary text never raises, and the fast lexer path agrees with the slow one.
"""

from __future__ import annotations

from typing import get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mariadb_suite import INSTALL_HINT, SUITE, corpus
from statement_corpus import FIXTURE_FUNCTIONS, Row, rows

from clusterdb.core.statement import Classification, Classifier, Dialect, TransactionKind
from clusterdb.core.statement_lex import _FAST, tokens, tokens_slow

CLASSIFIERS = {d: Classifier(d, FIXTURE_FUNCTIONS) for d in ("postgresql", "mysql")}
ROWS = rows()
PLAIN = [r for r in ROWS if "clusterdb" not in r.sql and r.run]
WRITES: dict[Dialect, list[str]] = {
    "postgresql": ["DELETE FROM t", "INSERT INTO t VALUES (1)", "SELECT nextval('s')"],
    "mysql": ["DELETE FROM t", "REPLACE INTO t VALUES (1)", "SELECT 1 FROM t FOR UPDATE"],
}
SQLISH = st.lists(
    st.sampled_from([*"'\"`$/*-#\\\n\r\t ;()eEaM!%s=@:,.0123456789", "FOR", " UPDATE", "$x$"])
).map("".join)
COMMENT_TEXT = st.text(alphabet=st.characters(blacklist_characters="*/\n\r\\!"), max_size=20)
SPACE = st.text(alphabet=" \t\n\r", max_size=3)


def _well_formed(got: Classification) -> None:
    assert got.target in ("replica", "primary")
    assert got.reason
    assert got.pins_session is None or got.pins_session
    assert got.transaction is None or got.transaction in get_args(TransactionKind)


@st.composite
def _comment(draw: st.DrawFn, dialect: Dialect) -> str:
    text = draw(COMMENT_TEXT.filter(lambda t: "clusterdb" not in t.lower()))
    kinds = [f"/* {text} */", f"-- {text}\n"]
    kinds += [f"/* {text} /* {text} */ */"] if dialect == "postgresql" else [f"# {text}\n"]
    return draw(st.sampled_from(kinds))


@st.composite
def _wrapping(draw: st.DrawFn, dialect: Dialect) -> tuple[str, str]:
    before = draw(st.lists(st.tuples(SPACE, _comment(dialect)), max_size=2))
    after = draw(st.lists(st.tuples(SPACE, _comment(dialect)), max_size=2))
    head = "".join(s + c for s, c in before) + draw(SPACE)
    return head, draw(SPACE) + "".join(s + c for s, c in after)


@given(row=st.sampled_from(PLAIN), data=st.data())
def test_comments_and_whitespace_around_a_statement_change_nothing(
    row: Row, data: st.DataObject
) -> None:
    head, tail = data.draw(_wrapping(row.dialect))
    classifier = CLASSIFIERS[row.dialect]
    assert classifier.classify(head + row.sql + tail) == classifier.classify(row.sql)


@given(row=st.sampled_from(PLAIN), data=st.data())
def test_a_write_before_or_after_a_statement_keeps_it_on_the_primary(
    row: Row, data: st.DataObject
) -> None:
    write = data.draw(st.sampled_from(WRITES[row.dialect]))
    classifier = CLASSIFIERS[row.dialect]
    assert classifier.classify(f"{write};\n{row.sql}").target == "primary"
    assert classifier.classify(f"{row.sql};\n{write}").target == "primary"


@given(row=st.sampled_from([r for r in PLAIN if r.dialect == "postgresql"]))
def test_a_data_modifying_with_before_a_postgresql_query_keeps_it_on_the_primary(
    row: Row,
) -> None:
    if not row.sql.lstrip().upper().startswith(("SELECT", "WITH")):
        return
    cte = "WITH w AS (DELETE FROM t RETURNING 1) "
    sql = row.sql.lstrip()
    if sql.upper().startswith("WITH"):
        sql = "WITH w AS (DELETE FROM t RETURNING 1), " + sql[4:]
    else:
        sql = cte + sql
    assert CLASSIFIERS["postgresql"].classify(sql).target == "primary"


@pytest.mark.parametrize("row", [r for r in PLAIN if "%(" not in r.sql and "/*M!" not in r.sql])
def test_case_does_not_matter(row: Row) -> None:
    classifier = CLASSIFIERS[row.dialect]
    answer = classifier.classify(row.sql)
    assert classifier.classify(row.sql.upper()) == answer
    assert classifier.classify(row.sql.lower()) == answer


@given(text=st.one_of(st.text(), SQLISH), dialect=st.sampled_from(["postgresql", "mysql"]))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_text_never_raises(text: str, dialect: Dialect) -> None:
    _well_formed(Classifier(dialect).classify(text))
    _well_formed(Classifier(dialect, backslash_escapes=True).classify(text))


@given(text=st.one_of(st.text(), SQLISH), dialect=st.sampled_from(["postgresql", "mysql"]))
@settings(max_examples=500)
def test_the_fast_lexer_path_agrees_with_the_slow_one(text: str, dialect: Dialect) -> None:
    for backslash in (False, True):
        fast = [t for t in _FAST[dialect, backslash].findall(text.upper()) if t]
        if dialect == "postgresql" and any(t[0] in "/$" for t in fast):
            continue  # these go the slow way
        assert fast == tokens_slow(text, dialect, backslash)[0]
        assert tokens(text, dialect, backslash) == tokens_slow(text, dialect, backslash)


@given(text=SQLISH, write=st.sampled_from(WRITES["postgresql"] + WRITES["mysql"]))
def test_a_write_first_keeps_any_text_on_the_primary(text: str, write: str) -> None:
    for dialect in ("postgresql", "mysql"):
        assert Classifier(dialect).classify(f"{write}; {text}").target == "primary"


# MariaDB's regression suite: ~190,000 distinct statements when all of it is read; a fixed
# slice of its files keeps this test to seconds.
SUITE_FILES = 1000
WRITE_VERBS = frozenset(
    [
        "insert",
        "update",
        "delete",
        "replace",
        "create",
        "alter",
        "drop",
        "truncate",
        "grant",
        "revoke",
        "rename",
    ]
)


@pytest.fixture(scope="module")
def suite() -> list[str]:
    if not SUITE.is_dir():
        pytest.fail(INSTALL_HINT)
    statements = corpus(limit_files=SUITE_FILES)
    assert len(statements) > 15_000
    return statements


@pytest.fixture(scope="module")
def short_suite(suite: list[str]) -> list[str]:
    return [s for s in suite if len(s) < 2000 and "clusterdb" not in s.lower()]


def test_every_suite_statement_is_classified_and_no_write_verb_goes_to_a_replica(
    suite: list[str],
) -> None:
    replicas = 0
    for dialect in ("mysql", "postgresql"):
        classifier = Classifier(dialect, cache_size=0)
        for sql in suite:
            got = classifier.classify(sql)
            _well_formed(got)
            first = sql.split(None, 1)[0].lower()
            if first in WRITE_VERBS:
                assert got.target == "primary", (dialect, sql)
            replicas += got.target == "replica"
    assert replicas > 5_000


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_suite_statements_keep_their_answer_in_comments_and_after_a_write(
    short_suite: list[str], data: st.DataObject
) -> None:
    sql = short_suite[data.draw(st.integers(0, len(short_suite) - 1))]
    classifier = CLASSIFIERS["mysql"]
    head, tail = data.draw(_wrapping("mysql"))
    assert classifier.classify(head + sql + tail) == classifier.classify(sql)
    assert classifier.classify(f"DELETE FROM t;\n{sql}").target == "primary"
