"""The routed connection's state machine (core.routing): each scenario runs statements in
order, the targets they get and the state they leave."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from clusterdb.core.routing import RoutingState, SessionWrites, plain_read
from clusterdb.core.statement import Classifier, Dialect

PG = Classifier("postgresql")
MY = Classifier("mysql")


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: list[tuple[str, str]]  # (sql, expected target)
    dialect: Dialect = "postgresql"
    autocommit: bool = True
    read_only: bool = False
    pinned: str | None = None
    transaction: str | None = None
    unsynced: bool = False
    failing: set[int] = field(default_factory=set)  # indexes of statements that fail


SCENARIOS = [
    Scenario("a read", [("SELECT 1", "replica")]),
    Scenario(
        "a write, then a read",
        [("INSERT INTO t VALUES (1)", "primary"), ("SELECT * FROM t", "replica")],
        unsynced=True,
    ),
    Scenario("a locking read", [("SELECT * FROM t FOR UPDATE", "primary")], unsynced=True),
    Scenario(
        "BEGIN ... COMMIT runs on the primary, reads included",
        [
            ("BEGIN", "primary"),
            ("SELECT 1", "primary"),
            ("UPDATE t SET a = 1", "primary"),
            ("COMMIT", "primary"),
            ("SELECT 1", "replica"),
        ],
        unsynced=True,
    ),
    Scenario(
        "a read-only transaction reads on the replica",
        [
            ("BEGIN READ ONLY", "replica"),
            ("SELECT 1", "replica"),
            ("SELECT 2", "replica"),
            ("COMMIT", "replica"),
        ],
    ),
    Scenario(
        "START TRANSACTION READ ONLY (MariaDB)",
        [("START TRANSACTION READ ONLY", "replica"), ("SELECT 1", "replica")],
        dialect="mysql",
        transaction="replica",
    ),
    Scenario(
        "a transaction that only read leaves nothing to sync",
        [("BEGIN", "primary"), ("SELECT 1", "primary"), ("COMMIT", "primary")],
    ),
    Scenario(
        "a rolled back write leaves nothing to sync",
        [("BEGIN", "primary"), ("DELETE FROM t", "primary"), ("ROLLBACK", "primary")],
    ),
    Scenario(
        "SET pins the session",
        [("SET search_path = x", "primary"), ("SELECT 1", "primary")],
        pinned="SET changes session state",
        unsynced=True,  # not a read: taken as a possible write
    ),
    Scenario(
        "SET LOCAL does not",
        [
            ("BEGIN", "primary"),
            ("SET LOCAL work_mem = '1MB'", "primary"),
            ("COMMIT", "primary"),
            ("SELECT 1", "replica"),
        ],
        unsynced=True,
    ),
    Scenario(
        "a temporary table pins",
        [("CREATE TEMP TABLE x (a int)", "primary"), ("SELECT * FROM x", "primary")],
        pinned="temporary table",
        unsynced=True,
    ),
    Scenario(
        "an advisory lock pins",
        [("SELECT pg_advisory_lock(1)", "primary"), ("SELECT 1", "primary")],
        pinned="advisory lock",
        unsynced=True,
    ),
    Scenario(
        "a pinned session's read-only transaction stays on the primary",
        [("LISTEN x", "primary"), ("BEGIN READ ONLY", "primary"), ("SELECT 1", "primary")],
        pinned="LISTEN",
        transaction="primary",
        unsynced=True,
    ),
    Scenario(
        "GET_LOCK pins (MariaDB)",
        [("SELECT GET_LOCK('a', 1)", "primary"), ("SELECT 1", "primary")],
        dialect="mysql",
        pinned="named lock (GET_LOCK)",
        unsynced=True,
    ),
    Scenario(
        "autocommit off: the primary, the transaction opened by the first statement",
        [("SELECT 1", "primary"), ("SELECT 2", "primary")],
        autocommit=False,
        transaction="primary",
    ),
    Scenario(
        "autocommit off and read_only: a replica",
        [("SELECT 1", "replica"), ("SELECT 2", "replica")],
        autocommit=False,
        read_only=True,
        transaction="replica",
    ),
    Scenario(
        "autocommit off: a failed first statement still opened the transaction",
        [("SELECT nonsense", "primary"), ("SELECT 1", "primary")],
        autocommit=False,
        transaction="primary",
        failing={0},
    ),
    Scenario(
        "a failed statement pins nothing",
        [("SET x = 1", "primary"), ("SELECT 1", "replica")],
        failing={0},
    ),
    Scenario(
        "COMMIT AND CHAIN keeps the transaction where it runs",
        [
            ("BEGIN", "primary"),
            ("INSERT INTO t VALUES (1)", "primary"),
            ("COMMIT AND CHAIN", "primary"),
            ("SELECT 1", "primary"),
        ],
        transaction="primary",
        unsynced=True,
    ),
]


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.name)
def test_scenario(s: Scenario) -> None:
    classifier = PG if s.dialect == "postgresql" else MY
    state = RoutingState(autocommit=s.autocommit, read_only=s.read_only)
    got = []
    for i, (sql, _) in enumerate(s.steps):
        c = classifier.classify(sql)
        target = state.route(c)
        state.starting(c, target)
        if i not in s.failing:
            state.ran(c, target)
        got.append((sql, target))
    assert got == s.steps
    assert state.pinned == s.pinned
    assert state.transaction == s.transaction
    assert state.unsynced is s.unsynced


def test_commit_and_rollback_calls_end_the_transaction() -> None:
    state = RoutingState(autocommit=False)
    c = PG.classify("UPDATE t SET a = 1")
    state.starting(c, state.route(c))
    state.ran(c, "primary")
    state.ended(committed=False)
    assert (state.transaction, state.unsynced) == (None, False)
    state.starting(c, state.route(c))
    state.ran(c, "primary")
    state.ended(committed=True)
    assert (state.transaction, state.unsynced) == (None, True)


def test_tokens_make_the_replica_stale_until_it_applied_them() -> None:
    state = RoutingState()
    assert state.replica_fresh()
    c = PG.classify("INSERT INTO t VALUES (1)")
    state.ran(c, state.route(c))
    assert not state.replica_fresh()  # a token is to be taken
    state.token_taken("0/3000060")
    assert not state.replica_fresh()  # the replica connection has not applied it
    state.replica_at("0/3000060")
    assert state.replica_fresh()
    state.token_taken(None)  # tokens unknown: any replica
    state.replica_at(None)
    assert state.replica_fresh()


def test_autocommit_cannot_change_inside_a_transaction() -> None:
    state = RoutingState()
    state.opened("primary")
    assert state.set_autocommit(False) is not None
    assert state.autocommit
    state.ended(committed=True)
    assert state.unsynced  # the transaction's statements were unknown: assume a write
    assert state.set_autocommit(False) is None
    assert not state.autocommit


def test_session_writes_keep_reads_on_the_primary_until_a_token_is_known() -> None:
    s = SessionWrites()
    assert s.target(writes=False) == "replica"
    assert s.target(writes=True) == "primary"
    assert s.target(writes=False) == "primary"  # the transaction that wrote reads its rows
    s.ended(committed=True)
    assert s.target(writes=False) == "primary"  # committed, not known to replicas yet
    s.token_taken(None)
    assert s.target(writes=False) == "primary"  # tokens unknown: still the primary
    s.token_taken("0/3000060")
    assert (s.target(writes=False), s.token) == ("replica", "0/3000060")


def test_session_writes_rolled_back_leave_nothing_to_sync() -> None:
    s = SessionWrites()
    s.target(writes=True)
    s.ended(committed=False)
    assert s.target(writes=False) == "replica"
    s.ended(committed=True)  # a transaction that only read
    assert (s.unsynced, s.target(writes=False)) == (False, "replica")


@pytest.mark.parametrize(
    ("setup", "steady"),
    [
        ([], True),
        (["SET x = 1"], False),  # pinned
        (["BEGIN"], False),  # in a transaction
        (["BEGIN", "COMMIT"], True),
        (["INSERT INTO t VALUES (1)"], False),  # a token to take first
    ],
)
def test_steady_states_let_plain_reads_skip_the_state_machine(
    setup: list[str], steady: bool
) -> None:
    state = RoutingState()
    for sql in setup:
        c = PG.classify(sql)
        target = state.route(c)
        state.starting(c, target)
        state.ran(c, target)
    assert state.steady() is steady
    read = PG.classify("SELECT a FROM t WHERE id = %s")
    assert plain_read(read)
    if steady:  # what the shortcut assumes: the replica, and no change
        before = repr(state)
        assert state.route(read) == "replica"
        state.ran(read, "replica")
        assert repr(state) == before and state.steady()


@pytest.mark.parametrize(
    "sql", ["SELECT 1 FOR UPDATE", "BEGIN READ ONLY", "SELECT pg_advisory_lock(1)", "DELETE FROM t"]
)
def test_plain_read_excludes_everything_else(sql: str) -> None:
    assert not plain_read(PG.classify(sql))
